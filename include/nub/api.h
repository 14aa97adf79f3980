/* Public-symbol marking for libnub: what the headers declare is exported from libnub.so, which is built with -fvisibility=hidden. */
#ifndef NUB_API_H
#define NUB_API_H

/*
 * libnub.so is compiled with -fvisibility=hidden, so only the functions the
 * public headers declare are exported (`nm -D` on it lists exactly them;
 * tests/exports/run.sh checks it). Each public header wraps its
 * declarations in NUB_API_BEGIN ... NUB_API_END, which gives them default
 * visibility; NUB_API does the same for one declaration. Anything declared
 * elsewhere (host/internal.h, host/testing.h) stays inside the library, and
 * is reachable only by programs that link the static libnub.a.
 */
#if defined(__GNUC__) || defined(__clang__)
#define NUB_API __attribute__((visibility("default")))
#define NUB_API_BEGIN _Pragma("GCC visibility push(default)")
#define NUB_API_END _Pragma("GCC visibility pop")
#else
#define NUB_API
#define NUB_API_BEGIN
#define NUB_API_END
#endif

#endif /* NUB_API_H */
