# Exported symbols, SOVERSION and everything "cmake --install" puts under
# the prefix: the tlspolicy program, libtlspolicy (shared and static), the
# public headers, tlspolicy.pc, the CMake package (tlspolicy::tlspolicy),
# man pages, bash completion and the examples (systemd, cron, Icinga).
# Included from the top-level CMakeLists.txt after the targets exist.

include(CMakePackageConfigHelpers)
include(CheckLinkerFlag)

# SOVERSION names the ABI, not the release: bump it whenever a public
# function or structure changes incompatibly (and start a new node in
# cmake/libtlspolicy.vers). Until then releases keep libtlspolicy.so.0.
set(TP_SOVERSION 0)
set_target_properties(tlspolicy PROPERTIES VERSION ${PROJECT_VERSION}
                      SOVERSION ${TP_SOVERSION})

set(TP_VERSION_SCRIPT ${PROJECT_SOURCE_DIR}/cmake/libtlspolicy.vers)
check_linker_flag(C "LINKER:--version-script=${TP_VERSION_SCRIPT}"
                  TP_HAVE_VERSION_SCRIPT)
if(TP_HAVE_VERSION_SCRIPT)
  target_link_options(tlspolicy PRIVATE
                      "LINKER:--version-script=${TP_VERSION_SCRIPT}")
  set_property(TARGET tlspolicy APPEND PROPERTY LINK_DEPENDS
               ${TP_VERSION_SCRIPT})
endif()

install(TARGETS tlspolicy_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tlspolicy EXPORT tlspolicyTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS tlspolicy_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

# CMake package: relocatable, found under any prefix.
set(TP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tlspolicy)
install(EXPORT tlspolicyTargets NAMESPACE tlspolicy::
        DESTINATION ${TP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tlspolicyConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tlspolicyConfig.cmake INSTALL_DESTINATION ${TP_CMAKE_DIR})
# The ABI is kept within a SOVERSION; while that is 0, the major version is
# too, so SameMajorVersion says the same thing.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tlspolicyConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tlspolicyConfig.cmake
        ${PROJECT_BINARY_DIR}/tlspolicyConfigVersion.cmake
        DESTINATION ${TP_CMAKE_DIR})

# pkg-config. What a static link needs besides libtlspolicy.a: the
# dependencies with a .pc go to Requires.private, Berkeley DB (none on
# Debian) to Libs.private. c-ares joins when the resolver finds it.
set(TP_PC_REQUIRES_PRIVATE "libssl libcrypto icu-uc libpcre2-8 lmdb libcdb jansson")
if(CARES_FOUND)
  string(APPEND TP_PC_REQUIRES_PRIVATE " libcares")
endif()
get_filename_component(_tp_bdb_name ${BDB_LIBRARY} NAME)
string(REGEX REPLACE "^lib(.*)\\.(so|a)(\\..*)?$" "\\1" _tp_bdb_name ${_tp_bdb_name})
set(TP_PC_LIBS_PRIVATE "-l${_tp_bdb_name}")
# The prefix is the one given at install time (cmake --install --prefix),
# not the configured one, so the file is written by the install step.
foreach(_tp_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_tp_dir}}")
    set(_tp_pc_${_tp_dir} "${CMAKE_INSTALL_${_tp_dir}}")
  else()
    set(_tp_pc_${_tp_dir} "\${prefix}/${CMAKE_INSTALL_${_tp_dir}}")
  endif()
endforeach()
string(REPLACE "\${prefix}" "\${exec_prefix}" _tp_pc_LIBDIR "${_tp_pc_LIBDIR}")
set(TP_PC_LIBDIR "${_tp_pc_LIBDIR}")
set(TP_PC_INCLUDEDIR "${_tp_pc_INCLUDEDIR}")
set(TP_PC_PREFIX "@TP_PC_PREFIX@")   # filled in at install time
configure_file(${PROJECT_SOURCE_DIR}/cmake/tlspolicy.pc.in
               ${PROJECT_BINARY_DIR}/tlspolicy.pc.in @ONLY)
install(CODE "
  set(TP_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/tlspolicy.pc.in\"
                 \"${PROJECT_BINARY_DIR}/tlspolicy.pc\" @ONLY)
")
install(FILES ${PROJECT_BINARY_DIR}/tlspolicy.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# Documentation and shell integration.
install(FILES ${PROJECT_SOURCE_DIR}/docs/tlspolicy.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# Examples for administrators and developers, as Debian ships them: the C
# programs, the cron entry, systemd units and monitoring definitions. The
# units are not installed active: re-pinning and reloading Postfix is
# something an administrator turns on.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
        PATTERN CMakeLists.txt EXCLUDE)

# bash completion, where bash-completion looks for it by command name.
install(FILES ${PROJECT_SOURCE_DIR}/contrib/bash-completion/tlspolicy
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

install(FILES ${PROJECT_SOURCE_DIR}/docs/libtlspolicy.3
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
