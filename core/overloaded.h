#pragma once

namespace core {

/// Lets std::visit take one lambda per alternative of a variant:
/// std::visit(Overloaded{[](const A&) {...}, [](const B&) {...}}, value).
template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace core
