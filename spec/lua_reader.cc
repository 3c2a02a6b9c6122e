#include "spec/lua_reader.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <lua.hpp>
#include <memory>
#include <algorithm>
#include <charconv>
#include <string_view>

#include "spec/lua_key_index.h"

namespace spec {
namespace {

// The chunk name Lua puts in front of error lines; replaced by the file's path
// afterwards, because Lua shortens long names with "...".
constexpr char kChunkName[] = "=spec";
constexpr int kMaxDepth = 64;
constexpr int kHookInterval = 1000;

// Per-state accounting, reached from the allocator and the hook.
struct Sandbox {
  LuaLimits limits;
  std::size_t memory_used = 0;
  std::uint64_t instructions_run = 0;
  bool memory_exceeded = false;
  bool instructions_exceeded = false;
};

void* Allocate(void* user_data, void* block, std::size_t old_size, std::size_t new_size) {
  auto* sandbox = static_cast<Sandbox*>(user_data);
  if (block == nullptr) old_size = 0;  // old_size then encodes the object type
  if (new_size == 0) {
    std::free(block);
    sandbox->memory_used -= old_size;
    return nullptr;
  }
  if (new_size > old_size &&
      sandbox->memory_used - old_size + new_size > sandbox->limits.memory_bytes) {
    sandbox->memory_exceeded = true;
    return nullptr;
  }
  void* resized = std::realloc(block, new_size);
  if (resized != nullptr) sandbox->memory_used = sandbox->memory_used - old_size + new_size;
  return resized;
}

Sandbox* SandboxOf(lua_State* state) {
  void* user_data = nullptr;
  lua_getallocf(state, &user_data);
  return static_cast<Sandbox*>(user_data);
}

void CountInstructions(lua_State* state, lua_Debug* debug) {
  Sandbox* sandbox = SandboxOf(state);
  if (!sandbox->instructions_exceeded) {
    sandbox->instructions_run += kHookInterval;
    if (sandbox->instructions_run <= sandbox->limits.instructions) return;
    sandbox->instructions_exceeded = true;
    // From now on every instruction raises, so a pcall that catches the
    // error cannot keep the script running: the next instruction after it
    // raises again, until the error reaches the top.
    lua_sethook(state, CountInstructions, LUA_MASKCOUNT, 1);
  }
  lua_getinfo(state, "l", debug);
  lua_pushfstring(state, "spec:%d: instruction budget exceeded", debug->currentline);
  lua_error(state);
}

int Print(lua_State* state) {
  int count = lua_gettop(state);
  for (int i = 1; i <= count; ++i) {
    std::fputs(luaL_tolstring(state, i, nullptr), stderr);
    lua_pop(state, 1);
    std::fputc(i < count ? '\t' : '\n', stderr);
  }
  return 0;
}

// setmetatable without __gc: Lua runs finalizers with debug hooks off, so an
// endless loop in one would escape the instruction budget. A metatable only
// makes an object finalizable if it has __gc when it is set, so this check
// at setmetatable time is enough.
int SetMetatableWithoutFinalizer(lua_State* state) {
  if (lua_type(state, 2) == LUA_TTABLE) {
    lua_pushliteral(state, "__gc");
    bool has_finalizer = lua_rawget(state, 2) != LUA_TNIL;
    lua_pop(state, 1);
    if (has_finalizer) return luaL_error(state, "__gc metamethods are not allowed in a spec");
  }
  lua_pushvalue(state, lua_upvalueindex(1));
  lua_insert(state, 1);
  lua_call(state, lua_gettop(state) - 1, 1);
  return 1;
}

// Opens the libraries a spec may use, then removes what reaches outside the
// sandbox or makes a spec differ from run to run.
int OpenSandbox(lua_State* state) {
  luaL_requiref(state, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(state, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(state, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(state, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(state, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  lua_settop(state, 0);
  for (const char* name : {"dofile", "loadfile", "load", "require", "collectgarbage"}) {
    lua_pushnil(state);
    lua_setglobal(state, name);
  }
  lua_pushcfunction(state, Print);
  lua_setglobal(state, "print");
  lua_getglobal(state, "setmetatable");
  lua_pushcclosure(state, SetMetatableWithoutFinalizer, 1);
  lua_setglobal(state, "setmetatable");
  const std::pair<const char*, const char*> removed[] = {
      {LUA_STRLIBNAME, "dump"}, {LUA_MATHLIBNAME, "random"}, {LUA_MATHLIBNAME, "randomseed"}};
  for (const auto& [library, function] : removed) {
    lua_getglobal(state, library);
    lua_pushnil(state);
    lua_setfield(state, -2, function);
    lua_pop(state, 1);
  }
  return 0;
}

struct StateCloser {
  void operator()(lua_State* state) const { lua_close(state); }
};

// Turns a Lua error message "spec:12: text" into a located error.
core::Error LuaError(const std::string& message, const std::string& file, core::ErrorCode code) {
  constexpr std::string_view kPrefix = "spec:";
  if (message.compare(0, kPrefix.size(), kPrefix) == 0) {
    const char* begin = message.data() + kPrefix.size();
    const char* end = message.data() + message.size();
    int line = 0;
    auto [after, error] = std::from_chars(begin, end, line);
    if (error == std::errc() && after != begin && line > 0 && end - after >= 2 && after[0] == ':' && after[1] == ' ') {
      return core::Error{code, std::string(after + 2, end), core::Location{file, line, 0}};
    }
  }
  return core::Error{code, message, core::Location{file, 0, 0}};
}

// Reads the value on top of the stack into a Node. Uses only calls that raise
// no Lua error (no metamethods, no allocation), so no C++ frame is ever
// skipped by a longjmp.
class Converter {
 public:
  Converter(lua_State* state, const LuaKeyIndex& index, std::string file)
      : state_(state), index_(index), file_(std::move(file)) {}

  core::Result<Node> Convert(const LuaKeyIndex::Match& match, const std::string& path, int depth) {
    Node node;
    node.location = match.location;
    const std::string where = path.empty() ? "the returned value" : path;
    if (depth > kMaxDepth) {
      return core::Error{core::ErrorCode::kLimit,
                         where + ": tables nested deeper than " + std::to_string(kMaxDepth) +
                             " levels (a table that contains itself?)",
                         node.location};
    }
    switch (lua_type(state_, -1)) {
      case LUA_TNIL:
        node.kind = Node::Kind::kNull;
        return node;
      case LUA_TBOOLEAN:
        node.kind = Node::Kind::kBool;
        node.boolean = lua_toboolean(state_, -1);
        return node;
      case LUA_TNUMBER:
        if (lua_isinteger(state_, -1)) {
          node.kind = Node::Kind::kInteger;
          node.integer = lua_tointeger(state_, -1);
        } else {
          node.kind = Node::Kind::kNumber;
          node.number = lua_tonumber(state_, -1);
        }
        return node;
      case LUA_TSTRING: {
        std::size_t length = 0;
        const char* data = lua_tolstring(state_, -1, &length);
        node.kind = Node::Kind::kString;
        node.text.assign(data, length);
        return node;
      }
      case LUA_TTABLE:
        return ConvertTable(std::move(node), match, path, depth);
      default:
        return core::Error{
            core::ErrorCode::kInvalidSpec,
            where + ": a " + std::string(lua_typename(state_, lua_type(state_, -1))) +
                " cannot be part of a spec (use strings, numbers, booleans and tables)",
            node.location};
    }
  }

 private:
  core::Result<Node> ConvertTable(Node node, const LuaKeyIndex::Match& match,
                                  const std::string& path, int depth) {
    if (!lua_checkstack(state_, 4)) {
      return core::Error{core::ErrorCode::kLimit, "Lua stack exhausted", node.location};
    }
    const std::string where = path.empty() ? "the returned table" : path;
    // A table is a list when its keys are exactly 1..n, a map when they are all strings.
    std::size_t length = lua_rawlen(state_, -1);
    std::size_t count = 0;
    bool string_keys = true;
    lua_pushnil(state_);
    while (lua_next(state_, -2) != 0) {
      ++count;
      if (lua_type(state_, -2) != LUA_TSTRING) string_keys = false;
      lua_pop(state_, 1);
    }
    if (count == 0) {
      node.kind = Node::Kind::kMap;
      node.empty_table = true;
      return node;
    }
    if (count == length) {
      node.kind = Node::Kind::kList;
      for (std::size_t i = 1; i <= length; ++i) {
        lua_rawgeti(state_, -1, static_cast<lua_Integer>(i));
        auto item = Convert(match, path + "[" + std::to_string(i - 1) + "]", depth + 1);
        lua_pop(state_, 1);
        if (!item) return item.error();
        node.items.push_back(std::move(item).value());
      }
      return node;
    }
    if (!string_keys) {
      return core::Error{
          core::ErrorCode::kInvalidSpec,
          where + ": a table must be a list (keys 1..n) or a map (string keys), not a mix",
          node.location};
    }
    node.kind = Node::Kind::kMap;
    lua_pushnil(state_);
    while (lua_next(state_, -2) != 0) {
      std::size_t key_length = 0;
      const char* key_data = lua_tolstring(state_, -2, &key_length);
      std::string key(key_data, key_length);
      LuaKeyIndex::Match child = index_.Descend(match, key);
      auto value = Convert(child, path.empty() ? key : path + "." + key, depth + 1);
      lua_pop(state_, 1);
      if (!value) return value.error();
      node.members.push_back(Node::Member{key, child.location, std::move(value).value()});
    }
    // lua_next's order is a hash order: sort by where the keys are written, then by name.
    std::stable_sort(node.members.begin(), node.members.end(),
                     [](const Node::Member& a, const Node::Member& b) {
                       if (a.key_location.line != b.key_location.line)
                         return a.key_location.line < b.key_location.line;
                       return a.key < b.key;
                     });
    return node;
  }

  lua_State* state_;
  const LuaKeyIndex& index_;
  std::string file_;
};

}  // namespace

core::Result<Node> ReadLua(const std::string& source, const std::string& file,
                           const LuaLimits& limits) {
  // Compiled source starts with ESC; refuse it before Lua sees it.
  if (!source.empty() && source[0] == '\x1b') {
    return core::Error{core::ErrorCode::kParse,
                       "precompiled Lua bytecode is not accepted; write Lua source",
                       core::Location{file, 0, 0}};
  }
  auto sandbox = std::make_unique<Sandbox>();
  sandbox->limits = limits;
  std::unique_ptr<lua_State, StateCloser> owner(lua_newstate(Allocate, sandbox.get()));
  if (!owner)
    return core::Error{core::ErrorCode::kLimit, "cannot start Lua: out of memory", {file, 0, 0}};
  lua_State* state = owner.get();

  lua_pushcfunction(state, OpenSandbox);
  if (lua_pcall(state, 0, 0, 0) != LUA_OK) {
    return core::Error{core::ErrorCode::kInternal, "cannot open the Lua sandbox", {file, 0, 0}};
  }
  int status = luaL_loadbufferx(state, source.data(), source.size(), kChunkName, "t");
  if (status == LUA_OK) {
    // The hook stays on to the end: __gc finalizers run at lua_close, and
    // they are bounded by the same budget.
    lua_sethook(state, CountInstructions, LUA_MASKCOUNT, kHookInterval);
    status = lua_pcall(state, 0, 1, 0);
  }
  if (status == LUA_OK && sandbox->instructions_exceeded) status = LUA_ERRRUN;
  if (status != LUA_OK) {
    std::string message = lua_type(state, -1) == LUA_TSTRING ? lua_tostring(state, -1)
                                                             : "error object is not a string";
    core::ErrorCode code =
        status == LUA_ERRSYNTAX ? core::ErrorCode::kParse : core::ErrorCode::kInvalidSpec;
    if (sandbox->memory_exceeded) {
      return core::Error{core::ErrorCode::kLimit,
                         "the Lua spec used more than its memory limit of " +
                             std::to_string(limits.memory_bytes >> 20) + " MiB",
                         core::Location{file, 0, 0}};
    }
    if (sandbox->instructions_exceeded) {
      core::Error error = LuaError(message, file, core::ErrorCode::kLimit);
      error.message = "the Lua spec ran more than " + std::to_string(limits.instructions) +
                      " instructions (an endless loop?)";
      return error;
    }
    core::Error error = LuaError(message, file, code);
    if (error.message.empty()) error.message = "the Lua spec raised an error with an empty message";
    return error;
  }
  if (lua_type(state, -1) != LUA_TTABLE) {
    return core::Error{
        core::ErrorCode::kInvalidSpec,
        std::string(
            "the Lua spec must return a table (return { app = \"name\", ... }), it returned ") +
            lua_typename(state, lua_type(state, -1)),
        core::Location{file, 0, 0}};
  }
  LuaKeyIndex index(source, file);
  Converter converter(state, index, file);
  return converter.Convert(index.Root(), "", 0);
}

}  // namespace spec
