#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from known-good vectors (the same
sources as the unit tests: SP 800-73-4, OpenPGP card 3.4, ISO/IEC 7816-3/-4 examples, real
card ATRs). Run from the repository root; files are named after their content."""
import hashlib, os, struct

def h(s): return bytes.fromhex(s.replace(' ', '').replace(':', ''))

def write(target, data):
    d = os.path.join('fuzz', 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + hashlib.sha1(data).hexdigest()[:16]), 'wb') as f:
        f.write(data)

command = [
    '00 20 00 80', '00 84 00 00 08', '00 CA 00 6E 00', '00 20 00 80 08 31 32 33 34 35 36 FF FF',
    '00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00 00', '00 CB 3F FF 05 5C 03 5F C1 02 00',
    '00 CA 00 6E 00 00 00', '00 B0 00 00 00 04 00', '00 2A 9E 9A 00 00 03 01 02 03 00 00',
    '00 A4 04 00 00 00 05 A0 00 00 03 08 01 00', 'FF CA 00 00 00', '10 DB 3F FF 02 AA BB',
    '00 DB 3F FF 00 01 00' + 'AB' * 256,
]
for c in command: write('command_apdu', h(c))

for r in ['90 00', '6A 82', '61 10', '6C 08', '63 C2', '01 02 03 90 00', '6E 00']:
    write('response_apdu', h(r))

ber = [
    # PIV Application Property Template (SP 800-73-4 Pt 2 §3.1.1)
    '61 11 4F 06 00 00 10 00 01 00 79 07 4F 05 A0 00 00 03 08',
    # PIV GET DATA response: 53 with a CHUID-like body and a long-form length
    '53 81 85 30 19' + 'D4' * 25 + '34 10' + '11' * 16 + '35 08 32 30 33 30 30 31 30 31 3E 40' + '00' * 64 + 'FE 00',
    # discovery object 7E
    '7E 12 4F 0B A0 00 00 03 08 00 00 10 00 01 00 5F 2F 02 40 00',
    # deep nesting
    '30 0C 30 0A 30 08 30 06 30 04 30 02 05 00',
    # 0x82/0x83/0x84 lengths (non-minimal: lenient only)
    '04 82 00 01 AA', '04 83 00 00 01 AA', '04 84 00 00 00 01 AA',
    # multi-byte tags
    '5F C1 02 01 00 7F 49 03 86 01 04 BF 0C 00',
]
for b in ber: write('ber_tlv', h(b))

for s in ['01 02 AA BB 02 00', 'FE FF 00 03 01 02 03', '10 01 00']:
    write('simple_tlv', h(s))

for c in ['73 C0 21 C0', '31 C0 64 43 04 02 31 80 00 90 00', '41 86 72 00', '5F 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F']:
    write('compact_tlv', h(c))

atrs = [
    '3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40',  # YubiKey 5
    '3B 95 13 81 01 80 73 FF 01 00 0B',  # trussed (Nitrokey piv-authenticator, opcard)
    '3B 8C 80 01 80 73 C8 21 13 66 02 03 02 00 3F 06 56',
    '3B DA 18 FF 81 B1 FE 75 1F 03 00 31 C5 73 C0 01 40 00 90 00 0C',  # OpenPGP card v2.x
    '3B 7F 96 00 00 80 31 80 65 B0 85 03 00 EF 12 0F FF 82 90 00',
    '3F 65 25 00 2C 09 69 90 00',  # inverse convention
    '3B 02 14 50', '3B 00',
    '3B 88 80 01 00 00 00 00 33 81 81 00 3A',
]
for a in atrs: write('atr', h(a))

def exchange(flags, max_cmd, max_rsp, nc, ne, answers):
    head = bytes([flags]) + struct.pack('>HHHH', max_cmd, max_rsp, nc, ne)
    body = b''.join(struct.pack('>H', len(a)) + a for a in answers)
    return head + body

write('exchange', exchange(0x02 | (31 << 3), 254, 255, 10, 256, [h('61 10'), b'\xAB' * 16 + h('90 00')]))
write('exchange', exchange(0x02 | (31 << 3), 254, 255, 600, 256, [h('90 00'), h('90 00'), h('01 02 90 00')]))
write('exchange', exchange(0x03 | (31 << 3), 65534, 65535, 600, 0, [b'\x01' * 1000 + h('90 00')]))
write('exchange', exchange(0x02 | (31 << 3), 254, 255, 0, 256, [h('6C 08'), b'\x02' * 8 + h('90 00')]))
write('exchange', exchange(0x02 | (2 << 3), 254, 255, 0, 256, [h('61 00')] * 5))
write('exchange', exchange(0x00, 100, 255, 300, 256, []))

# ----- CCID (scard-ccid): ccid_reader and ccid_descriptor -----
# ccid_reader input: reader byte, dwMaxCCIDMessageLength selector, operations byte, then
# messages `mode len(2, BE) bytes`; mode 0 frames bytes as bStatus bError specific abData of
# the answer the engine waits for, mode 0x10 appends an LRC to abData (T=1 blocks), mode 0x01
# sends it with an old bSeq, mode 0x80 sends the bytes raw (see tests/src/harness.rs).
def ccid_msg(mode, b):
    return bytes([mode]) + struct.pack('>H', len(b)) + b

def ok(data='', specific=0):
    return bytes([0, 0, specific]) + h(data)

def ccid_seed(reader, length, ops, msgs):
    write('ccid_reader', bytes([reader, length, ops]) + b''.join(msgs))

QEMU_ATR = '3B 08 52 55 53 54 43 43 49 44'
YUBIKEY_ATR = '3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40'
read300 = ' '.join('%02X' % (i % 256) for i in range(300))
# TPDU T=0 reader like QEMU usb-ccid (automatic negotiation and voltage, T=0 only):
# VERIFY case 1, SELECT case 4 with 61xx/GET RESPONSE, READ BINARY Ne 300 with GET RESPONSE.
ccid_seed(0x98, 0, 0xAA, [
    ccid_msg(0, ok(QEMU_ATR)),
    ccid_msg(0, ok('63 C3')),
    ccid_msg(0, ok('61 02')), ccid_msg(0, ok('6F 00 90 00')),
    ccid_msg(0, ok(read300[:256 * 3] + ' 61 2C')), ccid_msg(0, ok(read300[256 * 3:] + ' 90 00')),
    ccid_msg(0, ok('6C 05')), ccid_msg(0, ok('01 02 03 04 05 90 00')),
])
# TPDU T=1 reader without automatic parameters or IFSD: ATR, Parameters, S(IFS response),
# an I-block, a WTX request, a lost block (ICC_MUTE) and a chained response.
t1_params = '13 10 00 15 00 FE 00'
ccid_seed(0xA4, 0, 0xAA, [
    ccid_msg(0, ok(YUBIKEY_ATR)),
    ccid_msg(0, ok(t1_params, 1)),
    ccid_msg(0x10, ok('00 E1 01 FE')),
    ccid_msg(0x10, ok('00 00 02 63 C3')),
    ccid_msg(0x10, ok('00 C3 01 02')), ccid_msg(0x10, ok('00 40 02 90 00')),
    ccid_msg(0, bytes([0x40, 0xFE, 0])), ccid_msg(0x10, ok('00 00 02 90 00')),
    ccid_msg(0x10, ok('00 60 FE ' + read300[:254 * 3])),
    ccid_msg(0x10, ok('00 00 30 ' + read300[254 * 3:] + ' 90 00')),
])
# Extended APDU reader with 64-byte messages: chained responses (01h, 03h, 02h).
ccid_seed(0x93, 1, 0xAA, [
    ccid_msg(0, ok(YUBIKEY_ATR)),
    ccid_msg(0, ok('63 C3')),
    ccid_msg(0, ok('6F 04 84 02', 1)), ccid_msg(0, ok('3F 00 90 00', 2)),
    ccid_msg(0, ok(read300[:64 * 3], 1)), ccid_msg(0, ok(read300[64 * 3:128 * 3], 3)),
    ccid_msg(0, ok(read300[128 * 3:192 * 3], 3)), ccid_msg(0, ok(read300[192 * 3:256 * 3], 3)),
    ccid_msg(0, ok(read300[256 * 3:] + ' 90 00', 2)),
])
# Short APDU reader: time extensions, a stale answer, a failed command, a raw garbage message.
ccid_seed(0x92, 0, 0xAA, [
    ccid_msg(0, ok(YUBIKEY_ATR)),
    ccid_msg(0, bytes([0x80, 0x02, 0])), ccid_msg(0x01, ok('90 00')), ccid_msg(0, ok('90 00')),
    ccid_msg(0, bytes([0x41, 0x00, 0])),
    ccid_msg(0x80, h('80 02 00 00 00 00 03 00 00 00 90 00')),
])
# Slot status and escape operations, card removed (ICC absent).
ccid_seed(0x90, 0, 0x00, [
    ccid_msg(0, ok(QEMU_ATR)),
    ccid_msg(0, bytes([0x01, 0x00, 0x00])),
    ccid_msg(0, bytes([0x42, 0xFE, 0x00])),
])

for d in [
    # QEMU usb-ccid (../shared/qemu-ccid.md §5).
    '36 21 10 01 00 07 01 00 00 00 A0 0F 00 00 00 00 01 00 00 80 25 00 00 00 C2 01 00 00 FE 00 00 00 '
    '00 00 00 00 00 00 00 00 FE 04 01 00 12 00 01 00 FF FF 00 00 01 01',
    # Gemplus GemPC Twin (libccid readers/GemPCTwin.txt).
    '36 21 00 01 00 07 03 00 00 00 A0 0F 00 00 A0 0F 00 00 00 00 2A 00 00 0E 40 05 00 00 FE 00 00 00 '
    '00 00 00 00 00 00 00 00 30 02 01 00 0F 01 00 00 00 00 00 00 00 01',
    # RDR_to_PC_DataBlock with an ATR, a QEMU Parameters (dwLength 0 quirk), a SlotStatus.
    '80 0A 00 00 00 00 05 00 00 00 3B 08 52 55 53 54 43 43 49 44',
    '82 00 00 00 00 00 0B 00 00 00 00 00 00 00 00 FE 00',
    '81 00 00 00 00 00 09 01 00 00',
    '84 08 00 00 00 00 03 00 00 00 A0 0F 00 00 80 25 00 00',
    # NotifySlotChange, HardwareError.
    '50 03', '51 00 07 01',
    # T=1 blocks: I-block with LRC, S(IFS request) with LRC, R-block with CRC (FFFF init).
    '00 00 02 90 00 92', '00 C1 01 FE 3E',
    # PC_to_RDR_SetParameters T=1.
    '61 07 00 00 00 00 01 01 00 00 96 11 FF 45 00 FE 00',
]:
    write('ccid_descriptor', h(d))

# Stateful sessions (tests/src/harness/session.rs): byte 0 the number of operation bytes, then
# the operations (low nibble: 0-1 info, 2 verify, 3 a wrong PIN, 4-5 sign, 6 decrypt, 7 key
# generation, 8 certificate write, 9 certificate delete, 10-11 reset by another application,
# 12 removal and reinsertion, 13 deauthenticate, 14 admin, 15 tries left; high nibble the
# container), then the mutation stream (one byte per card answer: below 80 the answer as the
# card gave it, else the low nibble picks the mutation and the next bytes its parameters).
def session(ops, mutations=b''):
    return bytes([len(ops)]) + bytes(ops) + mutations

for target, dec in [('piv_session', 2), ('openpgp_session', 1), ('gids_session', 0)]:
    d = 0x06 | dec << 4
    # Faithful: info, PIN, sign, decrypt.
    write(target, session([0x00, 0x02, 0x04, d]))
    # Faithful: key generation, sign with it, certificate write, reset, sign, delete, removal.
    write(target, session([0x37, 0x34, 0x38, 0x0A, 0x34, 0x39, 0x0C, 0x00]))
    # Mutated answers after the card is opened: 6C08, truncation, a new status word, flips,
    # replacement, more data, no answer, a reset, 61xx, an inserted byte, other data.
    write(target, session([0x03, 0x02, 0x05, 0x14, d], bytes(12) + h(
        '88 08 00 00 80 03 81 05 00 82 10 01 83 04 41 42 90 00 84 01 01 85 86 87 00 89 00 00 '
        '8A 02 01 02')))
    # Every mutation in turn from the first answer on.
    write(target, session([0x00, 0x02, 0x04], bytes(range(0x80, 0x8B)) * 4))
