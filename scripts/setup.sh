#!/usr/bin/env bash
# setup.sh - install what detour needs on a Debian 12 machine (as root, or
# with sudo). Installs only what is missing, so a second run costs nothing.
set -euo pipefail

packages=(
  gcc make cmake pkg-config git        # the build
  libuv1-dev libyaml-dev libpcap-dev   # engine driver, scenario files, captures
  libssl-dev openssl                   # TLS (driver, fake servers), test CAs
  libcriterion-dev                     # unit and integration tests
  clang-format                         # the format check
  help2man man-db                      # man pages from --help; man for the install test
  clang libclang-rt-14-dev             # fuzz targets: clang, libFuzzer
  python3 swaks                        # external SMTP clients in tests
  libnet-ssleay-perl libio-socket-ssl-perl  # swaks --tls
  time                                 # GNU time: peak RSS in bench/send_memory.sh
  iproute2 libns3-dev ns3 libgsl-dev   # netsim: namespaces, taps, ns-3
  tshark libxml2-utils chromium        # report checks: pcap, JUnit XML, HTML
  fonts-dejavu-core                    # text in the HTML screenshot
  postfix                              # certified as an external client
  msmtp libidn12 util-linux            # msmtp; Exim's library; unshare/nsenter
)
# Peers certified privately (clients/*.yaml), unpacked into a folder of the
# build and never installed: nothing of theirs runs as the system's MTA.
peer_packages=(exim4-daemon-light nullmailer opensmtpd dma)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # Answer the packages' questions unattended: tshark's dumpcap is not
  # setuid; Postfix is a local-only system (the tests run private
  # instances of it on loopback and never use the system one).
  $sudo debconf-set-selections <<'EOF'
wireshark-common wireshark-common/install-setuid boolean false
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string detour.invalid
EOF
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The system Postfix is not ours to run: keep it stopped and off.
if command -v postfix >/dev/null 2>&1; then
  $sudo postfix status >/dev/null 2>&1 && $sudo postfix stop >/dev/null 2>&1 || true
  $sudo update-rc.d postfix disable >/dev/null 2>&1 || true
fi

# The peers: `apt-get download` + `dpkg-deb -x` into build/peers/PACKAGE
# (or $DETOUR_PEERS), which the manifests in clients/ find as {peers}.
peers=${DETOUR_PEERS:-"$(cd "$(dirname "$0")/.." && pwd)/build/peers"}
mkdir -p "$peers"
for p in "${peer_packages[@]}"; do
  [ -d "$peers/$p/usr" ] && continue
  dl=$(mktemp -d)
  chmod 755 "$dl" # apt's download user writes here
  (cd "$dl" && apt-get download -q "$p") &&
    dpkg-deb -x "$dl"/"${p}"_*.deb "$peers/$p" &&
    echo "setup: unpacked $p into $peers/$p"
  rm -rf "$dl"
done
