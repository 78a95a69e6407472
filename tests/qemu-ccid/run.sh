#!/usr/bin/env bash
# The ccid: backend against a USB CCID reader written by others: QEMU's usb-ccid device, with
# our simulated PIV card served to QEMU's ccid-card-passthru by `scard sim piv --vscard`.
#
# A tiny guest (Debian's generic kernel, a busybox initramfs) runs our statically linked test
# program (crates/scard-ccid/examples/ccid_e2e.rs) as its payload: it finds the reader through
# libusb (vendored by rusb) on the guest's xHCI, powers the card on, exchanges T=0 TPDUs
# (61xx and 6Cxx at TPDU level), reads the PIV certificate, verifies the PIN, has the card sign
# a fresh challenge, and sees the card removed. The host then checks the signature against the
# certificate (crates/scard-sim/examples/qemu_piv.rs).
#
# Installs nothing. Needs: qemu-system-x86_64 (Debian qemu-system-x86), a static busybox
# (busybox-static), cargo, and the kernel package linux-image-<version>-amd64, which is
# fetched with `apt-get download` into the work directory the first time (Debian's apt
# lists). KVM does not work on the CI machines (see ../shared/qemu-ccid.md): TCG it is.
#
# Environment: SCARD_BIN and QEMU_PIV_BIN name prebuilt `scard` and `qemu_piv` binaries
# (`cargo test --workspace` builds both; otherwise they are built here); SCARD_QEMU_DIR the
# work directory (default target/qemu).
#
# Exit status: 0 passed, 1 failed, 77 skipped (a prerequisite is missing; the reason is
# printed).
#
# QEMU facts the driver depends on (README.md next to this script): QEMU 7.2's usb-ccid never
# answers the XfrBlock pending when the card is removed (ccid_card_card_removed() flushes the
# answer into the bulk-in queue and ccid_reset() clears the queue again); only NotifySlotChange
# tells. The driver reads the interrupt pipe while it waits, so it reports "card removed".
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=${SCARD_QEMU_DIR:-$root/target/qemu}
SKIP=77

ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(ms)
phase_start=$start
phase() {
  local now; now=$(ms)
  printf '[%6.2fs] %s (%.2fs)\n' "$(awk "BEGIN{print ($now-$start)/1000}")" "$1" \
    "$(awk "BEGIN{print ($now-$phase_start)/1000}")"
  phase_start=$now
}
skip() { echo "SKIP: $*"; exit $SKIP; }
fail() { echo "FAIL: $*"; exit 1; }

# ---- prerequisites (cheap checks first, so a machine without QEMU skips at once) ----
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
devices=$(qemu-system-x86_64 -device help 2>/dev/null || true)
for d in usb-ccid ccid-card-passthru qemu-xhci; do
  grep -q "\"$d\"" <<<"$devices" || skip "QEMU has no $d device (Debian's qemu-system-common ships hw-usb-smartcard)"
done
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
  [ -x "$b" ] || continue
  linked=$(LC_ALL=C ldd "$b" 2>&1 || true)
  if grep -q "not a dynamic executable" <<<"$linked"; then busybox=$b; break; fi
done
[ -n "$busybox" ] || skip "no static busybox (apt-get install busybox-static)"
command -v cargo >/dev/null || skip "cargo not found"
mkdir -p "$work"

# ---- the guest kernel: Debian's generic one (the cloud kernel has no USB) ----
kdir=$work/kernel
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
  command -v apt-get >/dev/null || skip "no kernel in $kdir and no apt-get to fetch linux-image-amd64"
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || skip "apt-cache knows no linux-image-amd64 (run apt-get update)"
  rm -rf "$work/debs" && mkdir -p "$work/debs"
  (cd "$work/debs" && apt-get download "$pkg" >/dev/null 2>&1) \
    || skip "apt-get download $pkg failed (no network to Debian?)"
  rm -rf "$kdir.tmp" && dpkg-deb -x "$work"/debs/"$pkg"_*.deb "$kdir.tmp"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir" && rm -rf "$work/debs"
  phase "kernel package $pkg downloaded and unpacked"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
kver=${vmlinuz##*/vmlinuz-}
# An uncompressed vmlinux boots through PVH and saves the decompressor's ~2 s under TCG.
kernel=$work/vmlinux-$kver
if [ ! -s "$kernel" ]; then
  if command -v python3 >/dev/null && python3 - "$vmlinuz" "$kernel.tmp" <<'PY'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\xfd7zXZ\x00')
if i < 0:
    sys.exit(1)
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor().decompress(d[i:]))
PY
  then
    mv "$kernel.tmp" "$kernel"
  elif command -v xz >/dev/null; then
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
    if [ -n "$off" ] && tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$kernel.tmp" 2>/dev/null; then
      mv "$kernel.tmp" "$kernel"
    fi
  fi
  rm -f "$kernel.tmp"
  [ -s "$kernel" ] || kernel=$vmlinuz
  phase "kernel for PVH boot: $kernel"
fi
modules=()
for m in usb-common usbcore xhci-hcd xhci-pci; do
  ko=$(find "$kdir/lib/modules/$kver" -name "$m.ko" | head -n1 || true)
  [ -n "$ko" ] || fail "module $m.ko not in the kernel package $kver (compressed modules are not handled)"
  modules+=("$ko")
done

# ---- our binaries ----
if [ -z "${SCARD_BIN:-}" ] || [ -z "${QEMU_PIV_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p scard-cli -p scard-sim --example qemu_piv)
  SCARD_BIN=${SCARD_BIN:-$target/debug/scard}
  QEMU_PIV_BIN=${QEMU_PIV_BIN:-$target/debug/examples/qemu_piv}
  phase "host binaries built"
fi
# The guest program: static (glibc crt-static, libusb vendored), its own target directory so
# the flags do not disturb the main build; --target keeps them away from build scripts.
host_triple=$(rustc -vV | awk '/^host:/{print $2}')
(cd "$root" && CARGO_TARGET_DIR="$work/build" RUSTFLAGS='-C target-feature=+crt-static' \
  CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
  cargo build -q --release --target "$host_triple" -p scard-ccid --example ccid_e2e)
guest_bin=$work/build/$host_triple/release/examples/ccid_e2e
phase "guest program built (static, $(stat -c %s "$guest_bin") bytes)"

# ---- the initramfs: busybox, the USB modules, the program, an /init that runs it ----
rd=$work/initramfs
rm -rf "$rd" && mkdir -p "$rd/bin" "$rd/lib/modules"
cp "$busybox" "$rd/bin/busybox"
cp "$guest_bin" "$rd/ccid_e2e"
cp "${modules[@]}" "$rd/lib/modules/"
cat >"$rd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in usb-common usbcore xhci-hcd xhci-pci; do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
echo "=== init: USB modules loaded, uptime $(cut -d' ' -f1 /proc/uptime) s"
/ccid_e2e
echo "=== init: ccid_e2e rc=$?, uptime $(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
EOF
chmod +x "$rd/init"
(cd "$rd" && find . | "$busybox" cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio"
phase "initramfs ($(stat -c %s "$work/initrd.cpio") bytes)"

# ---- the card: a PIV card with a P-256 key and its certificate in 9A ----
state=$work/piv-state.json
rm -f "$state"
"$QEMU_PIV_BIN" provision "$state"

# ---- QEMU (the chardev server waits for the card provider) and the provider ----
sock=$work/vscard.sock
rm -f "$sock"
qpid=""
ppid_=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  [ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null || true
}
trap cleanup EXIT
# A fresh challenge for the card to sign, handed to the guest on the kernel command line.
challenge=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
timeout 120 qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot -net none \
  -kernel "$kernel" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 loglevel=3 panic=-1 scard.challenge=$challenge" \
  -chardev socket,id=vsc,path="$sock",server=on,wait=on \
  -device qemu-xhci,id=xhci \
  -device usb-ccid,id=ccid,bus=xhci.0 \
  -device ccid-card-passthru,chardev=vsc </dev/null >"$work/qemu.log" 2>&1 &
qpid=$!
"$SCARD_BIN" sim piv --state "$state" --vscard "$sock" --wait 20 --remove-after-idle 700 \
  >"$work/provider.log" 2>&1 &
ppid_=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=""
prc=0
wait "$ppid_" || prc=$?
ppid_=""
tr -d '\r' <"$work/qemu.log" >"$work/guest.log"
phase "QEMU ran (exit $qrc)"

# ---- results ----
grep '^===' "$work/guest.log" | cut -c1-160 || true
sed 's/^/provider: /' "$work/provider.log"
[ "$qrc" = 0 ] || fail "QEMU exited with $qrc (124: timeout); log: $work/guest.log"
[ "$prc" = 0 ] || fail "the card provider exited with $prc; log: $work/provider.log"
grep -q '^=== ccid_e2e PASS' "$work/guest.log" || fail "the guest test did not pass; log: $work/guest.log"
grep -Eq '61xx [1-9]' "$work/provider.log" || fail "no 61xx at TPDU level"
grep -Eq '6Cxx [1-9]' "$work/provider.log" || fail "no 6Cxx at TPDU level"
grep -q 'card removed when idle' "$work/provider.log" || fail "the provider did not remove the card"
"$QEMU_PIV_BIN" verify "$state" "$work/guest.log" "$challenge" || fail "signature verification"
phase "checked"
echo "PASS: QEMU usb-ccid end to end in $(awk "BEGIN{print ($(ms)-$start)/1000}") s"
