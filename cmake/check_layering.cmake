# SPDX-License-Identifier: MIT
# ctest `layering`: fails when a file of src/protocol or src/proxy includes
# uv.h or an OpenSSL header, or a file of src/auth or src/compose includes
# uv.h or openssl/ssl.h (docs/ARCHITECTURE.md, "Layers"). A textual scan, so it also sees includes under
# #if branches that the build does not take.
#
#   cmake -DSRC=<repo>/src -P cmake/check_layering.cmake
if(NOT SRC OR NOT IS_DIRECTORY "${SRC}/protocol")
  message(FATAL_ERROR "check_layering: pass -DSRC=<repository>/src")
endif()

set(violations "")
set(nfiles 0)
# forbidden included names, per layer
set(forbidden_protocol "^(uv\\.h|uv/.*|openssl/.*)$")
set(forbidden_auth "^(uv\\.h|uv/.*|openssl/ssl\\.h)$")
# the conversation: no libuv, no OpenSSL, and nothing of the adapter above
# it ("uv/..." is both libuv's directory and src/uv): calls go down only
set(forbidden_conv "^(uv\\.h|uv/.*|openssl/.*)$")
# the composer: the rules of src/auth (libcrypto, never libuv nor libssl)
set(forbidden_compose "${forbidden_auth}")
# the SOCKS5 handshake (src/proxy): libc only, like src/protocol
set(forbidden_proxy "${forbidden_protocol}")
foreach(layer protocol auth conv compose proxy)
  set(forbidden "${forbidden_${layer}}")
  file(GLOB_RECURSE files "${SRC}/${layer}/*.c" "${SRC}/${layer}/*.h")
  foreach(f ${files})
    math(EXPR nfiles "${nfiles} + 1")
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include")
    foreach(line ${lines})
      if(line MATCHES "#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"]")
        set(name "${CMAKE_MATCH_1}")
        if(name MATCHES "${forbidden}")
          file(RELATIVE_PATH rel "${SRC}/.." "${f}")
          string(APPEND violations "  ${rel}: #include ${name}\n")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

if(nfiles EQUAL 0)
  message(FATAL_ERROR "check_layering: no sources under ${SRC}")
endif()
if(violations)
  message(FATAL_ERROR "layering violations (docs/ARCHITECTURE.md: src/protocol and src/proxy use libc only; src/auth and src/compose never libuv nor libssl; src/conv neither libuv, OpenSSL nor src/uv):\n${violations}")
endif()
message(STATUS "layering: ${nfiles} files of src/protocol, src/auth, src/conv, src/compose and src/proxy checked, no forbidden include")
