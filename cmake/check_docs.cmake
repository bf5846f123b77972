# SPDX-License-Identifier: MIT
# Build the API reference (target `docs`) and, with STRICT=ON (the ctest
# `doxygen`), fail when Doxygen warned: an undocumented public symbol, a
# broken reference or markup. The warnings are in <docs>/warnings.log.
#
#   cmake -DDOXYGEN=<doxygen> -DDOCS=<build>/docs [-DSTRICT=ON] -P cmake/check_docs.cmake
if(NOT DOXYGEN)
  message(FATAL_ERROR "doxygen not found: install it (scripts/install-deps.sh) and reconfigure")
endif()
if(NOT EXISTS "${DOCS}/Doxyfile")
  message(FATAL_ERROR "check_docs: no ${DOCS}/Doxyfile (configure first)")
endif()
file(REMOVE "${DOCS}/warnings.log")
execute_process(COMMAND "${DOXYGEN}" "${DOCS}/Doxyfile" WORKING_DIRECTORY "${DOCS}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "doxygen failed (exit ${rc})")
endif()
if(NOT EXISTS "${DOCS}/html/index.html")
  message(FATAL_ERROR "doxygen wrote no ${DOCS}/html/index.html")
endif()
set(warnings "")
if(EXISTS "${DOCS}/warnings.log")
  file(READ "${DOCS}/warnings.log" warnings)
endif()
if(NOT warnings STREQUAL "")
  if(STRICT)
    message(FATAL_ERROR "doxygen warnings (document every public symbol):\n${warnings}")
  endif()
  message(WARNING "doxygen warnings:\n${warnings}")
endif()
message(STATUS "API reference: ${DOCS}/html/index.html")
