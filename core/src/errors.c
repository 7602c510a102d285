/*
 * errors.c - names and messages of the detour error values.
 *
 * Both functions are generated from DETOUR_ERRNO_MAP in detour.h, so a new
 * error value gets its name and its message in the same line that defines
 * it, and the three can never drift apart (libuv's UV_ERRNO_MAP habit).
 */
#include "detour/detour.h"

const char *detour_strerror(int err) {
  switch (err) {
#define XX(name, val, msg)                                                     \
  case DETOUR_E##name:                                                         \
    return msg;
    DETOUR_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *detour_err_name(int err) {
  switch (err) {
#define XX(name, val, msg)                                                     \
  case DETOUR_E##name:                                                         \
    return "E" #name;
    DETOUR_ERRNO_MAP(XX)
#undef XX
  }
  return "EUNKNOWN";
}
