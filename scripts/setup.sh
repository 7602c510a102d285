#!/usr/bin/env bash
# setup.sh - install what detour needs on a Debian 12 machine (as root, or
# with sudo). Installs only what is missing, so a second run costs nothing.
set -euo pipefail

packages=(
  gcc make cmake pkg-config git        # the build
  libuv1-dev libyaml-dev libpcap-dev   # engine driver, scenario files, captures
  libcriterion-dev                     # unit and integration tests
  clang-format                         # the format check
  python3 swaks                        # external SMTP clients in tests
  iproute2 libns3-dev ns3 libgsl-dev   # netsim: namespaces, taps, ns-3
  tshark libxml2-utils chromium        # report checks: pcap, JUnit XML, HTML
  fonts-dejavu-core                    # text in the HTML screenshot
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  # tshark asks whether to install dumpcap setuid: answer no, unattended.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
