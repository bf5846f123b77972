# SPDX-License-Identifier: MIT
# ctest `sources_listed`: every C file under src/ is compiled by a library
# target (the explicit lists of CMakeLists.txt). Configure writes the sources
# of every target to smtpuv-sources.txt in the build tree.
#
#   cmake -DROOT=<repo> -DLISTED=<build>/smtpuv-sources.txt -P cmake/check_sources.cmake
if(NOT ROOT OR NOT EXISTS "${LISTED}")
  message(FATAL_ERROR "check_sources: pass -DROOT=<repository> -DLISTED=<build>/smtpuv-sources.txt")
endif()
file(STRINGS "${LISTED}" listed)
file(GLOB_RECURSE present RELATIVE "${ROOT}" "${ROOT}/src/*.c")
set(missing "")
foreach(f ${present})
  list(FIND listed "${f}" i)
  if(i EQUAL -1)
    string(APPEND missing "  ${f}\n")
  endif()
endforeach()
list(LENGTH present n)
if(n EQUAL 0)
  message(FATAL_ERROR "check_sources: no C file under ${ROOT}/src")
endif()
if(missing)
  message(FATAL_ERROR "sources compiled by no library (add them to a list in CMakeLists.txt):\n${missing}")
endif()
message(STATUS "sources_listed: all ${n} files of src/ belong to a library")
