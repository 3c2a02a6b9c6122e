#pragma once

#include <utility>
#include <variant>

#include "core/error.h"

namespace core {

/// The value of an operation that can fail: either a T or an E (an Error, or
/// for loaders that report every problem at once, a list of them). Functions
/// that can fail return it instead of throwing across layers.
template <typename T, typename E = Error>
class Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, E> state_;
};

/// Success carries nothing.
struct Ok {};

using Status = Result<Ok>;

}  // namespace core
