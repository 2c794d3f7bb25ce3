-- The README's Lua quickstart runs as written, against the URL of this pass
-- (memory:// or a private Redis), given to it as RUNQ_URL.
local h = require "helper"

describe("README Lua quickstart (" .. h.url .. ")", function()
  it("prints the result", function()
    local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$")
    local f = assert(io.popen("python3 '" .. root .. "/tests/support/readme_block.py' lua"))
    local src = f:read("a")
    assert.is_true(f:close(), "README has no lua block")

    local printed = {}
    local env = setmetatable({
      print = function(...) printed[#printed + 1] = table.concat({ ... }, "\t") end,
      os = setmetatable({ getenv = function(k)
        if k == "RUNQ_URL" then return h.url end
        return os.getenv(k)
      end }, { __index = os }),
    }, { __index = _G })
    local chunk = assert(load(src, "=README.md", "t", env))
    chunk()
    assert.same({ "add -> 5" }, printed)
  end)
end)
