-- luarocks make               (from the repository root)
-- Builds the engine and runq.core with CMake against the headers of the Lua
-- luarocks targets (5.1/LuaJIT or 5.4: `luarocks --lua-version=5.4 make`).
-- Needs the engine's system libraries: libuv1-dev libmsgpack-dev
-- libzstd-dev libhiredis-dev, plus cmake and pkg-config.
rockspec_format = "3.0"
package = "runq"
version = "scm-1"
source = {
  url = "git+file:///work/main",
}
description = {
  summary = "runq distributed task queue: Lua binding and OpenResty producer",
  detailed = [[
require "runq" gives apps, tasks, enqueue and pull-mode workers over the
runq C engine (memory:// and redis://). runq.resty is a non-blocking
producer for OpenResty built on cosockets.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
build = {
  type = "command",
  build_command = [[
cmake -S . -B build-luarocks -DCMAKE_BUILD_TYPE=Release -DRUNQ_BUILD_TESTS=OFF -DRUNQ_BUILD_BENCH=OFF -DRUNQ_LUA_INCDIR="$(LUA_INCDIR)" &&
cmake --build build-luarocks --target runq_lua_rock -j2]],
  install_command = "true",
  install = {
    lua = {
      ["runq"] = "lua/runq/init.lua",
      ["runq.strict"] = "lua/runq/strict.lua",
      ["runq.resty"] = "lua/runq/resty.lua",
    },
    lib = {
      ["runq.core"] = "build-luarocks/lua/rock/runq/core.so",
    },
  },
}
