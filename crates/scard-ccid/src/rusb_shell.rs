//! The thin rusb shell (feature `usb`): finds CCID interfaces on the USB bus, claims them and
//! implements [`CcidUsb`] over libusb (vendored by rusb: no system library). No protocol
//! logic lives here: messages are bytes, and the slot engine decides what they mean.
//!
//! - [`RusbBus`] implements [`UsbBus`]: it lists the interfaces of class 0Bh (CCID Rev 1.1
//!   §4.2, Table 4.2-1) and the vendor-class (FFh) interfaces whose extra descriptors hold a
//!   CCID class descriptor (readers that predate the class, as libccid also accepts), and
//!   opens one: the interface is claimed and its alternate setting selected, and released
//!   when the [`RusbInterface`] is dropped. Opened for a connection, a kernel driver bound to
//!   the interface is detached (and attached again on release); opened for a brief look
//!   (listing readers), a bound kernel driver makes the reader busy instead. Another process
//!   holding the interface (pcscd's libccid) is libusb's Busy; a device we may not open is
//!   Access.
//! - [`RusbInterface`] implements [`CcidUsb`] on the claimed interface's bulk-in, bulk-out and
//!   interrupt-in endpoints (§5.2) and the default control pipe (§5.3), and maps libusb's
//!   errors to [`UsbFailure`] in one function ([`usb_failure`]).
//!
//! A bulk-in message is reassembled from its packets by [`read_message`]: the first transfer
//! asks for one packet, which holds the 10-byte header and so dwLength; the rest is asked for
//! exactly, so a message that fills its last packet completes without waiting for a
//! zero-length packet (a reader that sends one anyway has it skipped before the next message).
//! [`read_message_started_within`] waits in slices: it gives up when no message started
//! within the slice, but lets a started one complete, so the driver can read the interrupt
//! pipe between slices without cutting a message in two.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusb::{Direction, TransferType, UsbContext};

use crate::backend::{DeviceInfo, UsbBus};
use crate::descriptor::{ClassDescriptor, HEADER_LEN};
use crate::error::{Error, UsbFailure, UsbOperation};
use crate::message::ControlSetup;
use crate::usb::CcidUsb;

/// bInterfaceClass of a CCID interface (CCID Rev 1.1 §4.2).
pub const CLASS_CCID: u8 = 0x0B;
/// bInterfaceClass of a vendor-specific interface.
pub const CLASS_VENDOR: u8 = 0xFF;

/// libusb treats a timeout of 0 as "wait forever": every transfer waits at least this long.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Pause between reads while a reader keeps answering with zero-length packets.
const ZLP_PACE: Duration = Duration::from_millis(1);

/// Timeout of string descriptor reads while scanning.
const STRING_TIMEOUT: Duration = Duration::from_millis(500);

/// The largest bulk-in message accepted: a header and 64 KiB of data plus room for readers
/// that announce dwMaxCCIDMessageLength 65554 (QEMU's usb-ccid).
const MAX_MESSAGE: usize = 65_536 + 2 * HEADER_LEN;

/// Maps a libusb error to what the core understands (the one place this is decided).
pub fn usb_failure(err: rusb::Error) -> UsbFailure {
    match err {
        rusb::Error::Timeout => UsbFailure::Timeout,
        rusb::Error::Pipe => UsbFailure::Stall,
        rusb::Error::NoDevice => UsbFailure::NoDevice,
        rusb::Error::Overflow => UsbFailure::Overflow,
        rusb::Error::Access => UsbFailure::Access,
        rusb::Error::Busy => UsbFailure::Busy,
        rusb::Error::NotSupported => UsbFailure::NotSupported,
        rusb::Error::Io
        | rusb::Error::InvalidParam
        | rusb::Error::NotFound
        | rusb::Error::Interrupted
        | rusb::Error::NoMem
        | rusb::Error::BadDescriptor
        | rusb::Error::Other => UsbFailure::Io,
    }
}

/// Reads one bulk-in message through `transfer(max_len, timeout)`, which performs one bulk
/// transfer of at most `max_len` bytes. `packet` is the endpoint's wMaxPacketSize; the whole
/// message must arrive within `timeout`.
///
/// CCID Rev 1.1 §6.2: every message starts with a 10-byte header whose dwLength (offset 1,
/// little-endian) counts the bytes after it. Zero-length transfers before the header are the
/// zero-length packet that ended the previous message, and are skipped. Bytes beyond
/// dwLength in the first packet are kept (QEMU's usb-ccid sends Parameters with dwLength 0
/// followed by the data; the core names that quirk).
pub fn read_message(
    transfer: impl FnMut(usize, Duration) -> Result<Vec<u8>, UsbFailure>,
    packet: usize,
    timeout: Duration,
) -> Result<Vec<u8>, UsbFailure> {
    read_message_started_within(transfer, packet, timeout, timeout)?.ok_or(UsbFailure::Timeout)
}

/// [`read_message`] for a wait in slices ([`CcidUsb::bulk_in_started_within`]): `Ok(None)`
/// when no packet of a message came within `start` (when `start` is shorter than `timeout`);
/// once the first packet came, the message has all of `timeout` to complete. A packet that
/// arrives as the slice ends is not lost: libusb reports a timed-out transfer's data, and rusb
/// returns it.
pub fn read_message_started_within(
    mut transfer: impl FnMut(usize, Duration) -> Result<Vec<u8>, UsbFailure>,
    packet: usize,
    start: Duration,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, UsbFailure> {
    let started = Instant::now();
    let start = start.min(timeout);
    let sliced = start < timeout;
    let left = || timeout.saturating_sub(started.elapsed()).max(MIN_TIMEOUT);
    let left_to_start = || start.saturating_sub(started.elapsed()).max(MIN_TIMEOUT);
    let nothing = |failure| if sliced { Ok(None) } else { Err(failure) };
    let packet = packet.clamp(8, MAX_MESSAGE);
    // The header comes with the first non-empty transfer; zero-length packets before it are
    // skipped (within the timeout: a reader sending nothing else cannot hold us longer).
    // QEMU 7.2's usb-ccid answers every IN token with a zero-length packet while it has no
    // answer yet (instead of NAK): after the first one, the reads are paced.
    let mut message = match transfer(packet, left_to_start()) {
        Ok(m) => m,
        Err(UsbFailure::Timeout) => return nothing(UsbFailure::Timeout),
        Err(failure) => return Err(failure),
    };
    let mut empty = 0u32;
    while message.is_empty() {
        if started.elapsed() >= start {
            return nothing(UsbFailure::Timeout);
        }
        empty += 1;
        if empty > 1 {
            std::thread::sleep(ZLP_PACE);
        }
        message = match transfer(packet, left_to_start()) {
            Ok(m) => m,
            Err(UsbFailure::Timeout) => return nothing(UsbFailure::Timeout),
            Err(failure) => return Err(failure),
        };
    }
    // A header split over packets (wMaxPacketSize 8): read until it is complete.
    while message.len() < HEADER_LEN {
        let more = transfer(packet, left())?;
        if more.is_empty() {
            // A short packet ended the transfer: the message is what came.
            return Ok(Some(message));
        }
        message.extend_from_slice(&more);
    }
    let declared = match message.get(1..5) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    };
    let total = usize::try_from(declared).unwrap_or(usize::MAX).saturating_add(HEADER_LEN);
    // A dwLength beyond any reader's maximum: return what came; the core reports the
    // mismatch, and the rest (if any) is drained as stale input.
    let total = total.min(MAX_MESSAGE);
    while message.len() < total {
        let want = total - message.len();
        let more = transfer(want, left())?;
        if more.is_empty() {
            // A short (empty) packet: the reader ended the message early.
            break;
        }
        message.extend_from_slice(&more);
    }
    Ok(Some(message))
}

/// Whether an interface setting is a CCID interface, and its class descriptor: class 0Bh, or
/// vendor class FFh with a CCID class descriptor. The descriptor follows the interface
/// descriptor, or, in some readers, the endpoint descriptors (libccid looks there too).
fn ccid_descriptor(setting: &rusb::InterfaceDescriptor<'_>) -> Option<ClassDescriptor> {
    let class = setting.class_code();
    if class != CLASS_CCID && class != CLASS_VENDOR {
        return None;
    }
    let found = ClassDescriptor::find(setting.extra()).ok().or_else(|| {
        setting
            .endpoint_descriptors()
            .filter_map(|e| e.extra().and_then(|x| ClassDescriptor::find(x).ok()))
            .next()
    });
    if found.is_none() && class == CLASS_CCID {
        tracing::warn!(
            interface = setting.interface_number(),
            "CCID interface without a valid class descriptor: ignored"
        );
    }
    found
}

/// The endpoints of a CCID interface (CCID Rev 1.1 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Endpoints {
    bulk_in: u8,
    bulk_out: u8,
    interrupt_in: Option<u8>,
    bulk_in_packet: usize,
    interrupt_packet: usize,
}

fn endpoints(setting: &rusb::InterfaceDescriptor<'_>) -> Option<Endpoints> {
    let mut bulk_in = None;
    let mut bulk_out = None;
    let mut interrupt_in = None;
    for e in setting.endpoint_descriptors() {
        // wMaxPacketSize bits 10-0: the packet size (bits 12-11: high-bandwidth multiplier).
        let size = usize::from(e.max_packet_size() & 0x07FF);
        match (e.transfer_type(), e.direction()) {
            (TransferType::Bulk, Direction::In) => bulk_in = bulk_in.or(Some((e.address(), size))),
            (TransferType::Bulk, Direction::Out) => bulk_out = bulk_out.or(Some(e.address())),
            (TransferType::Interrupt, Direction::In) => {
                interrupt_in = interrupt_in.or(Some((e.address(), size)));
            }
            _ => {}
        }
    }
    let (bulk_in, bulk_in_packet) = bulk_in?;
    Some(Endpoints {
        bulk_in,
        bulk_out: bulk_out?,
        interrupt_in: interrupt_in.map(|(a, _)| a),
        bulk_in_packet,
        interrupt_packet: interrupt_in.map_or(8, |(_, s)| s),
    })
}

/// A device's serial number and product strings.
type Strings = (Option<String>, Option<String>);

/// The USB bus through libusb. See the module documentation.
pub struct RusbBus {
    context: rusb::Context,
    /// Serial number and product strings by (bus, address, vid, pid): reading them takes
    /// control transfers, done once per attachment.
    strings: HashMap<(u8, u8, u16, u16), Strings>,
}

impl std::fmt::Debug for RusbBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RusbBus").field("known_devices", &self.strings.len()).finish()
    }
}

impl RusbBus {
    /// Initialises libusb. Fails with [`UsbFailure::Unavailable`] where there is no USB
    /// (libusb finds no usbfs: containers, VMs without USB).
    pub fn new() -> Result<Self, Error> {
        // libusb reaches devices through usbfs, /dev/bus/usb/BBB/DDD (every host controller's
        // root hub has a node there). Without that directory the vendored libusb (built
        // without udev) fails to initialise too, but only after scanning every entry of /dev
        // for the pre-2.6 `usbdevB.D` nodes with sscanf (about 50 K instructions in a
        // container with no USB, on every process start): one stat() says the same.
        #[cfg(target_os = "linux")]
        if !std::path::Path::new("/dev/bus/usb").is_dir() {
            tracing::debug!("libusb_init skipped: no /dev/bus/usb (no USB host controller)");
            return Err(Error::Usb {
                operation: UsbOperation::Init,
                failure: UsbFailure::Unavailable,
            });
        }
        let context = rusb::Context::new().map_err(|err| {
            tracing::debug!("libusb_init: {err}");
            let failure = match usb_failure(err) {
                UsbFailure::Io => UsbFailure::Unavailable,
                other => other,
            };
            Error::Usb { operation: UsbOperation::Init, failure }
        })?;
        Ok(Self { context, strings: HashMap::new() })
    }

    fn device_error(
        d: &rusb::Device<rusb::Context>,
        vid: u16,
        pid: u16,
        operation: UsbOperation,
    ) -> impl Fn(rusb::Error) -> Error {
        let (bus, address) = (d.bus_number(), d.address());
        move |err| Error::UsbDevice { vid, pid, bus, address, operation, failure: usb_failure(err) }
    }

    /// The serial number and product strings of a device (cached).
    fn strings(
        &mut self,
        device: &rusb::Device<rusb::Context>,
        dd: &rusb::DeviceDescriptor,
    ) -> Strings {
        let key = (device.bus_number(), device.address(), dd.vendor_id(), dd.product_id());
        if let Some(cached) = self.strings.get(&key) {
            return cached.clone();
        }
        let strings = match device.open() {
            Ok(handle) => {
                let read = |index: Option<u8>| {
                    let index = index?;
                    match handle.read_languages(STRING_TIMEOUT) {
                        Ok(langs) => langs.first().and_then(|lang| {
                            handle.read_string_descriptor(*lang, index, STRING_TIMEOUT).ok()
                        }),
                        Err(_) => handle.read_string_descriptor_ascii(index).ok(),
                    }
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                };
                (read(dd.serial_number_string_index()), read(dd.product_string_index()))
            }
            Err(err) => {
                tracing::debug!(
                    "{:04x}:{:04x}: cannot open to read its strings: {err}",
                    dd.vendor_id(),
                    dd.product_id()
                );
                (None, None)
            }
        };
        self.strings.insert(key, strings.clone());
        strings
    }

    /// Finds the device and interface setting `info` names, with its endpoints.
    fn locate(
        &self,
        info: &DeviceInfo,
    ) -> Result<(rusb::Device<rusb::Context>, u8, Endpoints), Error> {
        let gone = Error::UsbDevice {
            vid: info.vid,
            pid: info.pid,
            bus: info.bus,
            address: info.address,
            operation: UsbOperation::Open,
            failure: UsbFailure::NoDevice,
        };
        let list = self.context.devices().map_err(|e| Error::Usb {
            operation: UsbOperation::Enumerate,
            failure: usb_failure(e),
        })?;
        let device = list
            .iter()
            .find(|d| d.bus_number() == info.bus && d.address() == info.address)
            .ok_or_else(|| gone.clone())?;
        let config = device
            .active_config_descriptor()
            .or_else(|_| device.config_descriptor(0))
            .map_err(Self::device_error(&device, info.vid, info.pid, UsbOperation::Descriptor))?;
        for interface in config.interfaces() {
            for setting in interface.descriptors() {
                if setting.interface_number() != info.interface
                    || ccid_descriptor(&setting).is_none()
                {
                    continue;
                }
                if let Some(eps) = endpoints(&setting) {
                    return Ok((device.clone(), setting.setting_number(), eps));
                }
            }
        }
        Err(gone)
    }
}

impl UsbBus for RusbBus {
    type Usb = RusbInterface;

    fn scan(&mut self) -> Result<Vec<DeviceInfo>, Error> {
        let list = self.context.devices().map_err(|e| Error::Usb {
            operation: UsbOperation::Enumerate,
            failure: usb_failure(e),
        })?;
        let mut found = Vec::new();
        for device in list.iter() {
            let Ok(dd) = device.device_descriptor() else { continue };
            let config = match device.active_config_descriptor() {
                Ok(c) => c,
                Err(_) => match device.config_descriptor(0) {
                    Ok(c) => c,
                    Err(_) => continue,
                },
            };
            let mut interfaces = Vec::new();
            for interface in config.interfaces() {
                // The first setting of an interface that is a CCID interface with usable
                // endpoints.
                let ccid = interface.descriptors().find_map(|setting| {
                    let descriptor = ccid_descriptor(&setting)?;
                    endpoints(&setting)?;
                    Some((setting.interface_number(), descriptor))
                });
                interfaces.extend(ccid);
            }
            if interfaces.is_empty() {
                continue;
            }
            let (serial, product) = self.strings(&device, &dd);
            for (interface, descriptor) in interfaces {
                found.push(DeviceInfo {
                    vid: dd.vendor_id(),
                    pid: dd.product_id(),
                    serial: serial.clone(),
                    product: product.clone(),
                    bus: device.bus_number(),
                    address: device.address(),
                    interface,
                    descriptor,
                });
            }
        }
        // Forget the strings of devices that went away (their address may be reused).
        self.strings.retain(|(bus, address, vid, pid), _| {
            found.iter().any(|d| (d.bus, d.address, d.vid, d.pid) == (*bus, *address, *vid, *pid))
        });
        Ok(found)
    }

    fn open(&mut self, info: &DeviceInfo) -> Result<RusbInterface, Error> {
        self.open_with(info, true)
    }

    fn open_to_look(&mut self, info: &DeviceInfo) -> Result<RusbInterface, Error> {
        self.open_with(info, false)
    }
}

impl RusbBus {
    /// Opens the device and claims the interface. With `detach`, a kernel driver bound to it
    /// is detached (and attached again on release); without, it makes the interface busy.
    fn open_with(&mut self, info: &DeviceInfo, detach: bool) -> Result<RusbInterface, Error> {
        let (device, setting, eps) = self.locate(info)?;
        let err = |op| Self::device_error(&device, info.vid, info.pid, op);
        // Access: the system does not let us open it (permissions; or pcscd runs as root and
        // has it).
        let handle = device.open().map_err(err(UsbOperation::Open))?;
        let interface = info.interface;
        // A kernel driver bound to the interface (usbfs reports it on Linux) must let go.
        let detached = match handle.kernel_driver_active(interface) {
            Ok(true) if detach => {
                handle
                    .detach_kernel_driver(interface)
                    .map_err(err(UsbOperation::DetachKernelDriver))?;
                true
            }
            Ok(true) => return Err(err(UsbOperation::Claim)(rusb::Error::Busy)),
            // NotSupported on platforms without kernel drivers to detach.
            Ok(false) | Err(_) => false,
        };
        // Busy: another process holds the interface (pcscd's libccid claims its readers for
        // as long as it runs).
        handle.claim_interface(interface).map_err(err(UsbOperation::Claim))?;
        if setting != 0 {
            handle.set_alternate_setting(interface, setting).map_err(err(UsbOperation::Claim))?;
        }
        tracing::debug!(
            "{:04x}:{:04x} bus {} address {}: interface {interface} claimed (bulk in {:#04x}, bulk out {:#04x}, interrupt {:?})",
            info.vid,
            info.pid,
            info.bus,
            info.address,
            eps.bulk_in,
            eps.bulk_out,
            eps.interrupt_in
        );
        Ok(RusbInterface {
            handle,
            interface,
            detached,
            eps,
            max_message: usize::try_from(info.descriptor.max_message_length())
                .unwrap_or(MAX_MESSAGE)
                .clamp(HEADER_LEN, MAX_MESSAGE),
        })
    }
}

/// A claimed CCID interface. Releasing it (on drop) gives the interface back to the kernel
/// driver that was detached, if any.
pub struct RusbInterface {
    handle: rusb::DeviceHandle<rusb::Context>,
    interface: u8,
    detached: bool,
    eps: Endpoints,
    max_message: usize,
}

impl std::fmt::Debug for RusbInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RusbInterface")
            .field("interface", &self.interface)
            .field("endpoints", &self.eps)
            .field("max_message", &self.max_message)
            .finish()
    }
}

impl Drop for RusbInterface {
    fn drop(&mut self) {
        let _ = self.handle.release_interface(self.interface);
        if self.detached {
            let _ = self.handle.attach_kernel_driver(self.interface);
        }
    }
}

impl CcidUsb for RusbInterface {
    fn bulk_out(&mut self, message: &[u8], timeout: Duration) -> Result<(), UsbFailure> {
        let written = self
            .handle
            .write_bulk(self.eps.bulk_out, message, timeout.max(MIN_TIMEOUT))
            .map_err(usb_failure)?;
        if written == message.len() { Ok(()) } else { Err(UsbFailure::Timeout) }
    }

    fn bulk_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        self.bulk_in_started_within(timeout, timeout)?.ok_or(UsbFailure::Timeout)
    }

    fn bulk_in_started_within(
        &mut self,
        start: Duration,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, UsbFailure> {
        let (handle, endpoint) = (&self.handle, self.eps.bulk_in);
        let max = self.max_message.max(MAX_MESSAGE);
        read_message_started_within(
            |len, t| {
                let mut buf = vec![0u8; len.min(max)];
                let n = handle.read_bulk(endpoint, &mut buf, t).map_err(usb_failure)?;
                buf.truncate(n);
                Ok(buf)
            },
            self.eps.bulk_in_packet,
            start.max(MIN_TIMEOUT),
            timeout.max(MIN_TIMEOUT),
        )
    }

    fn interrupt_in(&mut self, timeout: Duration) -> Result<Vec<u8>, UsbFailure> {
        let Some(endpoint) = self.eps.interrupt_in else {
            // No interrupt endpoint (allowed for readers without card change notification):
            // nothing ever comes.
            std::thread::sleep(timeout);
            return Err(UsbFailure::Timeout);
        };
        // NotifySlotChange for 8 slots at most 3 bytes, HardwareError 4: one packet.
        let mut buf = vec![0u8; self.eps.interrupt_packet.max(8)];
        let n = self
            .handle
            .read_interrupt(endpoint, &mut buf, timeout.max(MIN_TIMEOUT))
            .map_err(usb_failure)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn control(
        &mut self,
        setup: &ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, UsbFailure> {
        let timeout = timeout.max(MIN_TIMEOUT);
        // bmRequestType bit 7: device-to-host.
        if setup.request_type & 0x80 != 0 {
            let mut buf = vec![0u8; usize::from(setup.length)];
            let n = self
                .handle
                .read_control(
                    setup.request_type,
                    setup.request,
                    setup.value,
                    setup.index,
                    &mut buf,
                    timeout,
                )
                .map_err(usb_failure)?;
            buf.truncate(n);
            Ok(buf)
        } else {
            self.handle
                .write_control(
                    setup.request_type,
                    setup.request,
                    setup.value,
                    setup.index,
                    data,
                    timeout,
                )
                .map_err(usb_failure)?;
            Ok(Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::type_complexity)]
    use super::*;
    use std::collections::VecDeque;

    /// Scripted transfers: each entry is what one transfer returns (at most `len` bytes of
    /// it, as a device that sent more would overflow the request).
    fn script(
        packets: Vec<Result<Vec<u8>, UsbFailure>>,
    ) -> (
        impl FnMut(usize, Duration) -> Result<Vec<u8>, UsbFailure>,
        std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
    ) {
        let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = std::rc::Rc::clone(&asked);
        let mut queue: VecDeque<_> = packets.into();
        let f = move |len: usize, _t: Duration| {
            log.borrow_mut().push(len);
            match queue.pop_front() {
                Some(Ok(p)) if p.len() > len => Err(UsbFailure::Overflow),
                Some(r) => r,
                None => Err(UsbFailure::Timeout),
            }
        };
        (f, asked)
    }

    fn message(data_len: usize) -> Vec<u8> {
        let mut m = vec![0x80];
        m.extend_from_slice(&u32::try_from(data_len).unwrap().to_le_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0]);
        m.extend((0..data_len).map(|i| i as u8));
        m
    }

    fn packets(m: &[u8], size: usize) -> Vec<Result<Vec<u8>, UsbFailure>> {
        m.chunks(size).map(|c| Ok(c.to_vec())).collect()
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn a_short_message_is_one_packet() {
        let m = message(12);
        let (f, asked) = script(packets(&m, 64));
        assert_eq!(read_message(f, 64, T).unwrap(), m);
        assert_eq!(*asked.borrow(), [64]);
    }

    #[test]
    fn a_long_message_is_reassembled_and_the_rest_asked_for_exactly() {
        // 300-byte response: 310 bytes = 4 full packets + 54.
        let m = message(300);
        // The device answers the "rest" request with several packets in one transfer; a
        // transfer returns what the host controller gathered, here one packet at a time.
        let (f, asked) = script(packets(&m, 64));
        assert_eq!(read_message(f, 64, T).unwrap(), m);
        assert_eq!(*asked.borrow(), [64, 246, 182, 118, 54]);
    }

    #[test]
    fn an_exact_multiple_of_the_packet_size_needs_no_zero_length_packet() {
        // 128 bytes: two full packets and no ZLP; the second request is for exactly 64 bytes,
        // so it completes without a short packet.
        let m = message(118);
        assert_eq!(m.len(), 128);
        let (f, asked) = script(packets(&m, 64));
        assert_eq!(read_message(f, 64, T).unwrap(), m);
        assert_eq!(*asked.borrow(), [64, 64]);
        // 64 bytes exactly: one packet, done.
        let m = message(54);
        let (f, asked) = script(packets(&m, 64));
        assert_eq!(read_message(f, 64, T).unwrap(), m);
        assert_eq!(*asked.borrow(), [64]);
    }

    #[test]
    fn a_zero_length_packet_left_from_the_previous_message_is_skipped() {
        let m = message(3);
        let mut p = vec![Ok(Vec::new())];
        p.extend(packets(&m, 64));
        let (f, asked) = script(p);
        assert_eq!(read_message(f, 64, T).unwrap(), m);
        assert_eq!(*asked.borrow(), [64, 64]);
        // A reader answering "nothing yet" with zero-length packets (QEMU 7.2) is read
        // again until the answer comes.
        let mut p: Vec<_> = (0..5).map(|_| Ok(Vec::new())).collect();
        p.extend(packets(&m, 64));
        let (f, asked) = script(p);
        assert_eq!(read_message(f, 64, T).unwrap(), m);
        assert_eq!(asked.borrow().len(), 6);
        // ... but not beyond the timeout.
        let (f, _) = script((0..10_000).map(|_| Ok(Vec::new())).collect());
        let started = Instant::now();
        let short = Duration::from_millis(20);
        assert_eq!(read_message(f, 64, short).unwrap_err(), UsbFailure::Timeout);
        assert!(started.elapsed() >= short);
    }

    #[test]
    fn a_wait_in_slices_gives_up_only_before_a_message_starts() {
        let slice = Duration::from_millis(5);
        // Nothing within the slice: not an error, the caller waits again.
        let (f, _) = script(vec![Err(UsbFailure::Timeout)]);
        assert_eq!(read_message_started_within(f, 64, slice, T).unwrap(), None);
        // Zero-length packets (QEMU 7.2's "nothing yet") until the slice ends: the same.
        let (f, _) = script((0..10_000).map(|_| Ok(Vec::new())).collect());
        let started = Instant::now();
        assert_eq!(read_message_started_within(f, 64, slice, T).unwrap(), None);
        assert!(started.elapsed() >= slice && started.elapsed() < T);
        // A message that started within the slice has the whole timeout to complete: the
        // first transfer waits at most the slice, the rest up to the timeout.
        let m = message(200);
        let timeouts = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = std::rc::Rc::clone(&timeouts);
        let mut queue: VecDeque<Vec<u8>> = m.chunks(64).map(<[u8]>::to_vec).collect();
        let f = move |len: usize, t: Duration| {
            log.borrow_mut().push(t);
            let p = queue.pop_front().ok_or(UsbFailure::Timeout)?;
            assert!(p.len() <= len);
            Ok(p)
        };
        assert_eq!(read_message_started_within(f, 64, slice, T).unwrap(), Some(m));
        let timeouts = timeouts.borrow();
        assert!(timeouts[0] <= slice, "{timeouts:?}");
        assert!(timeouts[1..].iter().all(|t| *t > slice), "{timeouts:?}");
        // With the slice as long as the timeout, nothing is a timeout, as read_message says.
        let (f, _) = script(vec![]);
        assert_eq!(read_message_started_within(f, 64, T, T).unwrap_err(), UsbFailure::Timeout);
        // The rest of a started message never comes: a timeout, not "nothing yet".
        let (f, _) = script(vec![Ok(message(100)[..64].to_vec())]);
        assert_eq!(read_message_started_within(f, 64, slice, T).unwrap_err(), UsbFailure::Timeout);
    }

    #[test]
    fn qemu_parameters_with_dwlength_zero_keep_their_data() {
        // ../shared/qemu-ccid.md §5: Parameters with dwLength 0 and 7 bytes after the header.
        let m = vec![0x82, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0xFE, 0];
        let (f, _) = script(packets(&m, 64));
        assert_eq!(read_message(f, 64, T).unwrap(), m);
    }

    #[test]
    fn small_packets_split_the_header() {
        let m = message(5);
        let (f, asked) = script(packets(&m, 8));
        assert_eq!(read_message(f, 8, T).unwrap(), m);
        assert_eq!(*asked.borrow(), [8, 8]);
    }

    #[test]
    fn failures_and_timeouts_are_reported() {
        let (f, _) = script(vec![]);
        assert_eq!(read_message(f, 64, T).unwrap_err(), UsbFailure::Timeout);
        // The rest of the message never comes.
        let m = message(100);
        let (f, _) = script(vec![Ok(m[..64].to_vec())]);
        assert_eq!(read_message(f, 64, T).unwrap_err(), UsbFailure::Timeout);
        let (f, _) = script(vec![Err(UsbFailure::NoDevice)]);
        assert_eq!(read_message(f, 64, T).unwrap_err(), UsbFailure::NoDevice);
        // A dwLength beyond any reader: what came is returned for the core to reject.
        let mut m = message(4);
        m[1..5].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());
        let (f, _) = script(vec![Ok(m.clone()), Ok(Vec::new())]);
        assert_eq!(read_message(f, 64, T).unwrap(), m);
    }

    #[test]
    fn libusb_errors_map_to_failures() {
        // One row per rusb::Error variant.
        let table = [
            (rusb::Error::Timeout, UsbFailure::Timeout),
            (rusb::Error::Pipe, UsbFailure::Stall),
            (rusb::Error::NoDevice, UsbFailure::NoDevice),
            (rusb::Error::Overflow, UsbFailure::Overflow),
            (rusb::Error::Access, UsbFailure::Access),
            (rusb::Error::Busy, UsbFailure::Busy),
            (rusb::Error::NotSupported, UsbFailure::NotSupported),
            (rusb::Error::Io, UsbFailure::Io),
            (rusb::Error::InvalidParam, UsbFailure::Io),
            (rusb::Error::NotFound, UsbFailure::Io),
            (rusb::Error::Interrupted, UsbFailure::Io),
            (rusb::Error::NoMem, UsbFailure::Io),
            (rusb::Error::BadDescriptor, UsbFailure::Io),
            (rusb::Error::Other, UsbFailure::Io),
        ];
        for (err, failure) in table {
            assert_eq!(usb_failure(err), failure, "{err:?}");
        }
    }
}
