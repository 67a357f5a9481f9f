# Shared by .ci/setup-host and .ci/setup-lpar-host: phase headings with durations, and a quiet
# apt-get install of only the missing packages (--no-install-recommends; the full apt log goes
# to $APT_LOG and is printed only if apt fails).
APT_LOG="${APT_LOG:-/tmp/peerpods-setup-apt.log}"
_phase_started=0
_apt_updated=0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

phase() {  # phase NUMBER TITLE
    _phase_started=$SECONDS
    printf '\n==> phase %s: %s\n' "$1" "$2"
}

phase_done() {
    printf '    done in %ss\n' "$((SECONDS - _phase_started))"
}

missing_packages() {  # prints the given packages that are not installed
    local package
    for package in "$@"; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || echo "$package"
    done
}

apt_install() {  # apt_install PACKAGE... : installs the missing ones, saying which
    local missing
    mapfile -t missing < <(missing_packages "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "    already installed: $*"
        return 0
    fi
    echo "    installing (apt-get, --no-install-recommends): ${missing[*]}"
    if [ "$_apt_updated" -eq 0 ]; then
        as_root apt-get update -q >>"$APT_LOG" 2>&1 || { tail -n 20 "$APT_LOG" >&2; return 1; }
        _apt_updated=1
    fi
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >>"$APT_LOG" 2>&1; then
        tail -n 40 "$APT_LOG" >&2
        echo "apt-get failed; the whole log is $APT_LOG" >&2
        return 1
    fi
    echo "    apt log: $APT_LOG"
}
