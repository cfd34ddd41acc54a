#!/usr/bin/env bash
# Install what tests/test_slurm.py needs: SLURM (Debian slurm-wlm: slurmctld, slurmd,
# sbatch, ...), MUNGE and shellcheck. Idempotent: does nothing when all are installed.
#
# The tests start their own private munged/slurmctld/slurmd under a temporary folder,
# so the system services are not needed: they are kept from starting at install time
# (a temporary policy-rc.d), and no /etc/slurm or /etc/munge configuration is written.
#
# Usage (as root, or with sudo available): .ci/install-slurm.sh
set -euo pipefail

PACKAGES=(slurm-wlm munge shellcheck)
PROGRAMS=(sbatch srun squeue sinfo scontrol scancel slurmctld slurmd munged shellcheck)

missing() {
    local p
    for p in "${PROGRAMS[@]}"; do
        PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null 2>&1 || { echo "$p"; return 0; }
    done
    return 1
}

if ! missing >/dev/null; then
    echo "install-slurm: already installed: $(PATH="$PATH:/usr/sbin" slurmd -V), $(PATH="$PATH:/usr/sbin" munged -V 2>&1 | head -n1)"
    exit 0
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install-slurm: run as root (or install sudo)" >&2; exit 1; }
    SUDO=(sudo)
fi
command -v apt-get >/dev/null || { echo "install-slurm: needs a Debian/Ubuntu system (apt-get); install ${PACKAGES[*]} yourself" >&2; exit 1; }

# Keep the packages' system services (munge, slurmctld, slurmd) from being started.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    trap '"${SUDO[@]}" rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

if still=$(missing); then
    echo "install-slurm: $still still missing after installing ${PACKAGES[*]}" >&2
    exit 1
fi
echo "install-slurm: installed $(PATH="$PATH:/usr/sbin" slurmd -V), $(PATH="$PATH:/usr/sbin" munged -V 2>&1 | head -n1)"
