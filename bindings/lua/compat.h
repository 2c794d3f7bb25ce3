/* compat.h -- the few Lua 5.2+ C API calls runq.core uses, for Lua 5.1 and
 * LuaJIT. The module is written against 5.4; this header fills the gaps so
 * the same sources build for both. */
#ifndef RUNQ_LUA_COMPAT_H
#define RUNQ_LUA_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))

/* LuaJIT 2.1 already has the 5.2 auxiliary functions (and defines
 * luaL_newlib); plain Lua 5.1 gets these replacements. */
#ifndef luaL_newlib
static inline void rq_compat_traceback(lua_State *L, lua_State *L1,
                                       const char *msg, int level)
{
    (void)L1;
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_remove(L, -2);
    lua_pushstring(L, msg);
    lua_pushinteger(L, level + 1);
    lua_call(L, 2, 1);
}
#define luaL_traceback(L, L1, m, l) rq_compat_traceback((L), (L1), (m), (l))

static inline void rq_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    /* Only nup == 0 is used by runq.core. */
    (void)nup;
    for (; l->name != NULL; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}
#define luaL_setfuncs(L, l, n) rq_compat_setfuncs((L), (l), (n))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))

static inline void *rq_compat_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (p == NULL || !lua_getmetatable(L, i))
        return NULL;
    luaL_getmetatable(L, tname);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}
#define luaL_testudata(L, i, t) rq_compat_testudata((L), (i), (t))

static inline void rq_compat_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}
#define luaL_setmetatable(L, t) rq_compat_setmetatable((L), (t))
#endif /* luaL_newlib */

/* 5.1 has no integer subtype: a number is an integer when it is integral
 * and fits in int64 exactly. */
static inline int rq_compat_isinteger(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TNUMBER)
        return 0;
    lua_Number n = lua_tonumber(L, i);
    return n == (lua_Number)(long long)n && n >= -9223372036854775808.0 &&
           n < 9223372036854775808.0;
}
#define lua_isinteger(L, i) rq_compat_isinteger((L), (i))
#define RQ_TOINT64(L, i) ((long long)lua_tonumber((L), (i)))
#define RQ_PUSHINT64(L, v) lua_pushnumber((L), (lua_Number)(v))
#else
#define RQ_TOINT64(L, i) ((long long)lua_tointeger((L), (i)))
#define RQ_PUSHINT64(L, v) lua_pushinteger((L), (lua_Integer)(v))
#endif

#endif
