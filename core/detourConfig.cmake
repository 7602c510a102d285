include(CMakeFindDependencyMacro)
find_dependency(PkgConfig)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET openssl>=3.0)
# The report writers capture with libpcap; the runner uses threads.
pkg_check_modules(PCAP QUIET IMPORTED_TARGET libpcap)
find_dependency(Threads)
include("${CMAKE_CURRENT_LIST_DIR}/detourTargets.cmake")
