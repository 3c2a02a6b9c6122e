#include "spec/lua_key_index.h"

#include <algorithm>
#include <cctype>

namespace spec {
namespace {

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// A cursor over the source that keeps the line and column of its position.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool done() const { return position_ >= text_.size(); }
  char peek(std::size_t ahead = 0) const {
    return position_ + ahead < text_.size() ? text_[position_ + ahead] : '\0';
  }
  void advance() {
    if (done()) return;
    if (text_[position_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++position_;
  }
  int line() const { return line_; }
  int column() const { return column_; }

  // At "[[" or "[==[": the level (number of '='), else -1.
  int LongBracketLevel() const {
    if (peek() != '[') return -1;
    std::size_t ahead = 1;
    while (peek(ahead) == '=') ++ahead;
    return peek(ahead) == '[' ? static_cast<int>(ahead - 1) : -1;
  }

  void SkipLongBracket(int level) {
    for (int i = 0; i < level + 2; ++i) advance();
    while (!done()) {
      if (peek() == ']') {
        std::size_t ahead = 1;
        while (peek(ahead) == '=') ++ahead;
        if (peek(ahead) == ']' && static_cast<int>(ahead - 1) == level) {
          for (std::size_t i = 0; i <= ahead; ++i) advance();
          return;
        }
      }
      advance();
    }
  }

  // Reads a quoted string at the cursor and returns its raw contents.
  std::string ReadQuoted() {
    char quote = peek();
    advance();
    std::string value;
    while (!done() && peek() != quote && peek() != '\n') {
      if (peek() == '\\') {
        advance();
        if (done()) break;
      }
      value += peek();
      advance();
    }
    advance();
    return value;
  }

  void SkipSpace() {
    while (!done() && std::isspace(static_cast<unsigned char>(peek()))) advance();
  }

 private:
  std::string_view text_;
  std::size_t position_ = 0;
  int line_ = 1;
  int column_ = 1;
};

}  // namespace

LuaKeyIndex::LuaKeyIndex(std::string_view source, std::string file) : file_(std::move(file)) {
  Cursor cursor(source);
  while (!cursor.done()) {
    char c = cursor.peek();
    if (c == '-' && cursor.peek(1) == '-') {
      cursor.advance();
      cursor.advance();
      int level = cursor.LongBracketLevel();
      if (level >= 0) {
        cursor.SkipLongBracket(level);
      } else {
        while (!cursor.done() && cursor.peek() != '\n') cursor.advance();
      }
    } else if (c == '"' || c == '\'') {
      cursor.ReadQuoted();
    } else if (c == '[') {
      int level = cursor.LongBracketLevel();
      if (level >= 0) {
        cursor.SkipLongBracket(level);
        continue;
      }
      // ["key"] = value
      int line = cursor.line(), column = cursor.column();
      cursor.advance();
      cursor.SkipSpace();
      if (cursor.peek() != '"' && cursor.peek() != '\'') continue;
      std::string key = cursor.ReadQuoted();
      cursor.SkipSpace();
      if (cursor.peek() != ']') continue;
      cursor.advance();
      cursor.SkipSpace();
      if (cursor.peek() == '=' && cursor.peek(1) != '=')
        entries_[key].push_back({line, column, count_++});
    } else if (IsNameStart(c)) {
      int line = cursor.line(), column = cursor.column();
      std::string name;
      while (IsNameChar(cursor.peek())) {
        name += cursor.peek();
        cursor.advance();
      }
      cursor.SkipSpace();
      if (cursor.peek() == '=' && cursor.peek(1) != '=')
        entries_[name].push_back({line, column, count_++});
    } else {
      cursor.advance();
    }
  }
}

LuaKeyIndex::Match LuaKeyIndex::Descend(const Match& parent, const std::string& key) const {
  auto found = entries_.find(key);
  if (found == entries_.end()) return parent;
  const std::vector<Entry>& places = found->second;
  auto place =
      std::lower_bound(places.begin(), places.end(), parent.next,
                       [](const Entry& entry, std::size_t next) { return entry.order < next; });
  if (place == places.end()) return parent;
  return Match{core::Location{file_, place->line, place->column}, place->order + 1};
}

core::Location LuaKeyIndex::Locate(const std::vector<std::string>& path) const {
  Match match = Root();
  for (const std::string& key : path) match = Descend(match, key);
  return match.location;
}

}  // namespace spec
