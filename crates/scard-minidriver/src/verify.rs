//! Checking a card's signature on the host with the container's public key, before it is
//! handed on: a broken or hostile card may answer a signature command with 9000 and bytes
//! that are no signature (a flipped byte, a truncated or padded answer). A signature that
//! does not verify is an error naming the operation, never a result.
//!
//! RSA: RFC 8017 §8.2.2 (RSASSA-PKCS1-v1_5: the encoded block is compared whole), §8.1.2
//! (RSASSA-PSS), raw RSA (the block as given); ECDSA: FIPS 186-4 §6.4 over the digest as
//! given (r || s, each the field size). A P-521 key cannot be checked here and is passed.

use rsa::traits::PublicKeyParts;

use crate::error::{CardError, Result};
use crate::padding::pkcs1_v15_sign_block;
use crate::types::{Curve, HashAlg, PublicKey, SignPadding, SignRequest};

const OPERATION: &str = "sign";

fn refused(reason: String) -> CardError {
    CardError::Crypto {
        operation: OPERATION,
        reason: format!("the card's signature does not verify with the key's public key: {reason}"),
    }
}

/// Verifies `signature`, the card's answer to `request`, with `key`. `Ok` when it verifies
/// (or when the host cannot check the key's kind: P-521); a [`CardError::Crypto`] of
/// operation "sign" otherwise.
pub fn verify_signature(
    key: &PublicKey,
    request: &SignRequest<'_>,
    signature: &[u8],
) -> Result<()> {
    match key {
        PublicKey::Rsa { n, e } => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(n),
                rsa::BigUint::from_bytes_be(e),
            )
            .map_err(|e| refused(format!("RSA key: {e}")))?;
            verify_rsa(&key, request, signature)
        }
        PublicKey::Ec { curve: Curve::P256, point } => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|e| refused(format!("P-256 point: {e}")))?;
            let sig = p256::ecdsa::Signature::from_slice(signature)
                .map_err(|_| refused(format!("{} bytes are no P-256 r || s", signature.len())))?;
            let point = vk.to_encoded_point(false);
            let (x, y) = point.x().zip(point.y()).ok_or_else(|| refused("P-256 point".into()))?;
            ecdsa_check::<p256::NistP256>(x, y, request.data, &sig, P256_G_ODD_MULTIPLES)
        }
        PublicKey::Ec { curve: Curve::P384, point } => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|e| refused(format!("P-384 point: {e}")))?;
            let sig = p384::ecdsa::Signature::from_slice(signature)
                .map_err(|_| refused(format!("{} bytes are no P-384 r || s", signature.len())))?;
            let point = vk.to_encoded_point(false);
            let (x, y) = point.x().zip(point.y()).ok_or_else(|| refused("P-384 point".into()))?;
            ecdsa_check::<p384::NistP384>(x, y, request.data, &sig, &[])
        }
        PublicKey::Ec { curve: Curve::P521, .. } => Ok(()),
    }
}

fn verify_rsa(key: &rsa::RsaPublicKey, request: &SignRequest<'_>, signature: &[u8]) -> Result<()> {
    let k = key.size();
    if signature.len() != k {
        return Err(refused(format!("{} bytes for a {k}-byte modulus", signature.len())));
    }
    if let SignPadding::Pss { salt_len } = request.padding {
        return verify_pss(key, request.hash, salt_len, request.data, signature);
    }
    // s^e mod n (RFC 8017 §5.2.2 RSAVP1), then the block it must be.
    let s = rsa::BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return Err(refused("signature representative out of range".to_owned()));
    }
    let m = public_power(&s, key.e(), key.n());
    let mut em = m.to_bytes_be();
    if em.len() < k {
        let mut padded = vec![0u8; k - em.len()];
        padded.append(&mut em);
        em = padded;
    }
    let expected = match (request.padding, request.hash) {
        (SignPadding::Pkcs1, Some(hash)) => {
            pkcs1_v15_sign_block(&hash.digest_info(request.data)?, k)?
        }
        (SignPadding::Pkcs1, None) => pkcs1_v15_sign_block(request.data, k)?,
        _ => {
            let mut block = vec![0u8; k.saturating_sub(request.data.len())];
            block.extend_from_slice(request.data);
            block
        }
    };
    if em == expected { Ok(()) } else { Err(refused("RSA".to_owned())) }
}

/// `s^e mod n` by square-and-multiply over the bits of `e` (RFC 8017 §5.2.2, RSAVP1). Every
/// value is public, so the time may depend on them. num-bigint-dig's `modpow` (what
/// `rsa::hazmat::rsa_encrypt` calls) runs a 4-bit window over the whole 64-bit limb of the
/// exponent: about 95 Montgomery products for e = 65537 where this takes 16 squarings and 2
/// products (2.4 M instructions against 0.5 M for a 2048-bit key, measured with callgrind).
fn public_power(s: &rsa::BigUint, e: &rsa::BigUint, n: &rsa::BigUint) -> rsa::BigUint {
    // Left to right; squaring the 1 before e's first set bit costs next to nothing.
    let mut acc = rsa::BigUint::from(1u8) % n;
    for byte in e.to_bytes_be() {
        for bit in (0..8).rev() {
            acc = (&acc * &acc) % n;
            if (byte >> bit) & 1 == 1 {
                acc = (&acc * s) % n;
            }
        }
    }
    acc
}

/// ECDSA verification, FIPS 186-4 §6.4.2, over the digest as given (`bits2field`, as the
/// `ecdsa` crate's own verification), with `R = u1·G + u2·Q` computed in variable time: every
/// value here is public. The `ecdsa` crate (0.16) computes the two products apart with
/// constant-time complete formulas and table look-ups, then an inversion for `R`'s x; here the
/// products are interleaved over width-5 NAFs (one run of doublings; about a sixth of the
/// positions add) in Jacobian coordinates, and x is compared without an inversion
/// (`X == r·Z²`). P-256 in `pkcs11-tool --sign`: 3.2 M instructions before, 1.2 M after
/// (callgrind). Tested against the `ecdsa` crate's verification.
fn ecdsa_check<C>(
    qx: &p256::elliptic_curve::FieldBytes<C>,
    qy: &p256::elliptic_curve::FieldBytes<C>,
    prehash: &[u8],
    signature: &ecdsa::Signature<C>,
    g_table: &[(&[u8], &[u8])],
) -> Result<()>
where
    C: primeorder::PrimeCurveParams,
    ecdsa::SignatureSize<C>: p256::elliptic_curve::generic_array::ArrayLength<u8>,
{
    use p256::elliptic_curve::Scalar;
    use p256::elliptic_curve::ff::{Field as _, PrimeField};
    use p256::elliptic_curve::ops::{Invert as _, Reduce};

    let bad = || refused("ECDSA".to_owned());
    // The doubling formula of [`Jacobian`] is for a = -3 (P-256, P-384: FIPS 186-4 §D.1.2).
    let three = C::FieldElement::ONE.double() + C::FieldElement::ONE;
    if C::EQUATION_A != -three {
        return Err(refused("a curve with a != -3".to_owned()));
    }
    let field = |bytes: &p256::elliptic_curve::FieldBytes<C>| {
        Option::<C::FieldElement>::from(C::FieldElement::from_repr(bytes.clone()))
    };
    let z = ecdsa::hazmat::bits2field::<C>(prehash)
        .map_err(|_| refused(format!("a {}-byte digest is too short", prehash.len())))?;
    let z = <Scalar<C> as Reduce<C::Uint>>::reduce_bytes(&z);
    let (r, s) = signature.split_scalars();
    let s_inv = *s.invert_vartime();
    let u1 = z * s_inv;
    let u2 = *r * s_inv;
    let (gx, gy) = C::GENERATOR;
    let g = Jacobian { x: gx, y: gy, z: C::FieldElement::ONE };
    let q = Jacobian {
        x: field(qx).ok_or_else(bad)?,
        y: field(qy).ok_or_else(bad)?,
        z: C::FieldElement::ONE,
    };
    // G's odd multiples, given (affine) or computed.
    let given: Option<Vec<Jacobian<C::FieldElement>>> = g_table
        .iter()
        .map(|(x, y)| {
            let bytes = |b: &[u8]| {
                p256::elliptic_curve::FieldBytes::<C>::from_exact_iter(b.iter().copied())
            };
            let (x, y) = (field(&bytes(x)?)?, field(&bytes(y)?)?);
            Some(Jacobian { x, y, z: C::FieldElement::ONE })
        })
        .collect();
    let g_table = match given {
        Some(table) if table.len() == 1 << (NAF_WIDTH - 2) => table,
        _ => odd_multiples(&g),
    };
    let point = lincomb_vartime(&g_table, &u1.to_repr(), &odd_multiples(&q), &u2.to_repr());
    if bool::from(point.z.is_zero()) {
        return Err(bad());
    }
    // R's affine x is X / Z²; x mod n == r means x == r, or x == r + n when that is below p
    // (x < p < 2n).
    let zz = point.z.square();
    let r_field = field(&r.to_repr()).ok_or_else(bad)?;
    if point.x == r_field * zz {
        return Ok(());
    }
    // n as a field element ((n - 1) + 1), and p - n as -n.
    let n = field(&(-Scalar::<C>::ONE).to_repr()).ok_or_else(bad)? + C::FieldElement::ONE;
    let below_p = r.to_repr() < (-n).to_repr();
    if below_p && point.x == (r_field + n) * zz { Ok(()) } else { Err(bad()) }
}

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³; Z = 0 is the point at infinity) on a
/// short Weierstrass curve with a = -3, as P-256 and P-384.
#[derive(Clone, Copy)]
struct Jacobian<F> {
    x: F,
    y: F,
    z: F,
}

impl<F: p256::elliptic_curve::ff::Field> Jacobian<F> {
    fn infinity() -> Self {
        Jacobian { x: F::ONE, y: F::ONE, z: F::ZERO }
    }

    fn is_infinity(&self) -> bool {
        bool::from(self.z.is_zero())
    }

    fn neg(&self) -> Self {
        Jacobian { x: self.x, y: -self.y, z: self.z }
    }

    /// 2P ("dbl-2001-b", a = -3; Explicit-Formulas Database).
    fn double(&self) -> Self {
        if self.is_infinity() || bool::from(self.y.is_zero()) {
            return Self::infinity();
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x * gamma;
        let t = (self.x - delta) * (self.x + delta);
        let alpha = t.double() + t;
        let beta4 = beta.double().double();
        let x = alpha.square() - beta4.double();
        let z = (self.y + self.z).square() - gamma - delta;
        let gamma2 = gamma.square();
        let y = alpha * (beta4 - x) - gamma2.double().double().double();
        Jacobian { x, y, z }
    }

    /// P + Q ("add-2007-bl"), with the cases those formulas do not cover: either point at
    /// infinity, P = Q (doubled) and P = -Q (infinity).
    fn add(&self, other: &Self) -> Self {
        if self.is_infinity() {
            return *other;
        }
        if other.is_infinity() {
            return *self;
        }
        if other.z == F::ONE {
            return self.add_affine(other);
        }
        let z1z1 = self.z.square();
        let z2z2 = other.z.square();
        let u1 = self.x * z2z2;
        let u2 = other.x * z1z1;
        let s1 = self.y * other.z * z2z2;
        let s2 = other.y * self.z * z1z1;
        let h = u2 - u1;
        let r = (s2 - s1).double();
        if bool::from(h.is_zero()) {
            return if bool::from(r.is_zero()) { self.double() } else { Self::infinity() };
        }
        let i = h.double().square();
        let j = h * i;
        let v = u1 * i;
        let x = r.square() - j - v.double();
        let y = r * (v - x) - (s1 * j).double();
        let z = ((self.z + other.z).square() - z1z1 - z2z2) * h;
        Jacobian { x, y, z }
    }

    /// P + Q for a Q with Z = 1 ("madd-2007-bl"), and the same special cases as [`Self::add`].
    fn add_affine(&self, other: &Self) -> Self {
        if self.is_infinity() {
            return *other;
        }
        let z1z1 = self.z.square();
        let u2 = other.x * z1z1;
        let s2 = other.y * self.z * z1z1;
        let h = u2 - self.x;
        let r = (s2 - self.y).double();
        if bool::from(h.is_zero()) {
            return if bool::from(r.is_zero()) { self.double() } else { Self::infinity() };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h * i;
        let v = self.x * i;
        let x = r.square() - j - v.double();
        let y = r * (v - x) - (self.y * j).double();
        let z = (self.z + h).square() - z1z1 - hh;
        Jacobian { x, y, z }
    }
}

/// Width of the NAFs of [`lincomb_vartime`]: tables of 8 odd multiples.
const NAF_WIDTH: u32 = 5;

/// `a·P + b·Q` for scalars given big-endian and the odd multiples of P and Q
/// ([`odd_multiples`]), in variable time (Straus: one chain of doublings, adding a table
/// entry where either width-5 NAF digit is not zero).
fn lincomb_vartime<F: p256::elliptic_curve::ff::Field>(
    p_table: &[Jacobian<F>],
    a: &[u8],
    q_table: &[Jacobian<F>],
    b: &[u8],
) -> Jacobian<F> {
    let digits = [naf(a, NAF_WIDTH), naf(b, NAF_WIDTH)];
    let tables = [p_table, q_table];
    let len = digits.iter().map(Vec::len).max().unwrap_or(0);
    let mut acc = Jacobian::infinity();
    for i in (0..len).rev() {
        acc = acc.double();
        for (digits, table) in digits.iter().zip(tables) {
            let Some(&d) = digits.get(i) else { continue };
            if d == 0 {
                continue;
            }
            // d is odd: entry |d| / 2 holds |d|·P.
            let Some(entry) = table.get(usize::from(d.unsigned_abs() / 2)) else { continue };
            acc = if d > 0 { acc.add(entry) } else { acc.add(&entry.neg()) };
        }
    }
    acc
}

/// P, 3P, 5P, ..., 15P.
fn odd_multiples<F: p256::elliptic_curve::ff::Field>(p: &Jacobian<F>) -> Vec<Jacobian<F>> {
    let twice = p.double();
    let mut table = Vec::with_capacity(1 << (NAF_WIDTH - 2));
    let mut next = *p;
    for _ in 0..1 << (NAF_WIDTH - 2) {
        table.push(next);
        next = next.add(&twice);
    }
    table
}

/// The width-`w` non-adjacent form of a big-endian number: digits least significant first,
/// each zero or odd in (-2^(w-1), 2^(w-1)), at most one of any `w` consecutive digits not zero.
fn naf(be: &[u8], w: u32) -> Vec<i8> {
    // Little-endian 64-bit limbs, and one more for the carry of a negative digit.
    let mut limbs: Vec<u64> =
        be.rchunks(8).map(|c| c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))).collect();
    limbs.push(0);
    let window = 1u64 << w;
    let mut digits = Vec::with_capacity(limbs.len() * 64 + 1);
    while limbs.iter().any(|&l| l != 0) {
        let low = limbs.first().copied().unwrap_or(0);
        let shift = if low & 1 == 0 {
            // A run of zero digits (at most 63 at a time).
            let zeros = low.trailing_zeros().min(63);
            digits.resize(digits.len() + zeros as usize, 0);
            zeros
        } else {
            let m = low & (window - 1);
            if m >= window / 2 {
                // The digit m - 2^w: the number grows by 2^w - m (its low w bits become 0).
                let mut carry = window - m;
                digits.push(-(carry as i8));
                for limb in limbs.iter_mut() {
                    let (sum, over) = limb.overflowing_add(carry);
                    *limb = sum;
                    carry = u64::from(over);
                    if carry == 0 {
                        break;
                    }
                }
            } else {
                digits.push(m as i8);
                if let Some(low) = limbs.first_mut() {
                    *low -= m;
                }
            }
            // The low w bits are now 0: the digit and w - 1 zeros.
            digits.resize(digits.len() + (w - 1) as usize, 0);
            w
        };
        // Shift right by 1..=63 bits.
        let mut high = 0u64;
        for limb in limbs.iter_mut().rev() {
            let out = *limb << (64 - shift);
            *limb = (*limb >> shift) | high;
            high = out;
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    digits
}

/// G, 3G, ..., 15G of P-256 (affine x, y; SEC 2 §2.4.2 for G), the table the P-256 check
/// would otherwise compute for every signature; `p256_table_is_the_odd_multiples_of_g` checks it
/// against the p256 crate.
const P256_G_ODD_MULTIPLES: &[(&[u8], &[u8])] = &[
    // 1G
    (
        &[
            0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
            0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45,
            0xd8, 0x98, 0xc2, 0x96,
        ],
        &[
            0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f,
            0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68,
            0x37, 0xbf, 0x51, 0xf5,
        ],
    ),
    // 3G
    (
        &[
            0x5e, 0xcb, 0xe4, 0xd1, 0xa6, 0x33, 0x0a, 0x44, 0xc8, 0xf7, 0xef, 0x95, 0x1d, 0x4b,
            0xf1, 0x65, 0xe6, 0xc6, 0xb7, 0x21, 0xef, 0xad, 0xa9, 0x85, 0xfb, 0x41, 0x66, 0x1b,
            0xc6, 0xe7, 0xfd, 0x6c,
        ],
        &[
            0x87, 0x34, 0x64, 0x0c, 0x49, 0x98, 0xff, 0x7e, 0x37, 0x4b, 0x06, 0xce, 0x1a, 0x64,
            0xa2, 0xec, 0xd8, 0x2a, 0xb0, 0x36, 0x38, 0x4f, 0xb8, 0x3d, 0x9a, 0x79, 0xb1, 0x27,
            0xa2, 0x7d, 0x50, 0x32,
        ],
    ),
    // 5G
    (
        &[
            0x51, 0x59, 0x0b, 0x7a, 0x51, 0x51, 0x40, 0xd2, 0xd7, 0x84, 0xc8, 0x56, 0x08, 0x66,
            0x8f, 0xdf, 0xef, 0x8c, 0x82, 0xfd, 0x1f, 0x5b, 0xe5, 0x24, 0x21, 0x55, 0x4a, 0x0d,
            0xc3, 0xd0, 0x33, 0xed,
        ],
        &[
            0xe0, 0xc1, 0x7d, 0xa8, 0x90, 0x4a, 0x72, 0x7d, 0x8a, 0xe1, 0xbf, 0x36, 0xbf, 0x8a,
            0x79, 0x26, 0x0d, 0x01, 0x2f, 0x00, 0xd4, 0xd8, 0x08, 0x88, 0xd1, 0xd0, 0xbb, 0x44,
            0xfd, 0xa1, 0x6d, 0xa4,
        ],
    ),
    // 7G
    (
        &[
            0x8e, 0x53, 0x3b, 0x6f, 0xa0, 0xbf, 0x7b, 0x46, 0x25, 0xbb, 0x30, 0x66, 0x7c, 0x01,
            0xfb, 0x60, 0x7e, 0xf9, 0xf8, 0xb8, 0xa8, 0x0f, 0xef, 0x5b, 0x30, 0x06, 0x28, 0x70,
            0x31, 0x87, 0xb2, 0xa3,
        ],
        &[
            0x73, 0xeb, 0x1d, 0xbd, 0xe0, 0x33, 0x18, 0x36, 0x6d, 0x06, 0x9f, 0x83, 0xa6, 0xf5,
            0x90, 0x00, 0x53, 0xc7, 0x36, 0x33, 0xcb, 0x04, 0x1b, 0x21, 0xc5, 0x5e, 0x1a, 0x86,
            0xc1, 0xf4, 0x00, 0xb4,
        ],
    ),
    // 9G
    (
        &[
            0xea, 0x68, 0xd7, 0xb6, 0xfe, 0xdf, 0x0b, 0x71, 0x87, 0x89, 0x38, 0xd5, 0x1d, 0x71,
            0xf8, 0x72, 0x9e, 0x0a, 0xcb, 0x8c, 0x2c, 0x6d, 0xf8, 0xb3, 0xd7, 0x9e, 0x8a, 0x4b,
            0x90, 0x94, 0x9e, 0xe0,
        ],
        &[
            0x2a, 0x27, 0x44, 0xc9, 0x72, 0xc9, 0xfc, 0xe7, 0x87, 0x01, 0x4a, 0x96, 0x4a, 0x8e,
            0xa0, 0xc8, 0x4d, 0x71, 0x4f, 0xea, 0xa4, 0xde, 0x82, 0x3f, 0xe8, 0x5a, 0x22, 0x4a,
            0x4d, 0xd0, 0x48, 0xfa,
        ],
    ),
    // 11G
    (
        &[
            0x3e, 0xd1, 0x13, 0xb7, 0x88, 0x3b, 0x4c, 0x59, 0x06, 0x38, 0x37, 0x9d, 0xb0, 0xc2,
            0x1c, 0xda, 0x16, 0x74, 0x2e, 0xd0, 0x25, 0x50, 0x48, 0xbf, 0x43, 0x33, 0x91, 0xd3,
            0x74, 0xbc, 0x21, 0xd1,
        ],
        &[
            0x90, 0x99, 0x20, 0x9a, 0xcc, 0xc4, 0xc8, 0xa2, 0x24, 0xc8, 0x43, 0xaf, 0xa4, 0xf4,
            0xc6, 0x8a, 0x09, 0x0d, 0x04, 0xda, 0x5e, 0x98, 0x89, 0xda, 0xe2, 0xf8, 0xee, 0xfc,
            0xe8, 0x2a, 0x37, 0x40,
        ],
    ),
    // 13G
    (
        &[
            0x17, 0x7c, 0x83, 0x7a, 0xe0, 0xac, 0x49, 0x5a, 0x61, 0x80, 0x5d, 0xf2, 0xd8, 0x5e,
            0xe2, 0xfc, 0x79, 0x2e, 0x28, 0x4b, 0x65, 0xea, 0xd5, 0x8a, 0x98, 0xe1, 0x5d, 0x9d,
            0x46, 0x07, 0x2c, 0x01,
        ],
        &[
            0x63, 0xbb, 0x58, 0xcd, 0x4e, 0xbe, 0xa5, 0x58, 0xa2, 0x40, 0x91, 0xad, 0xb4, 0x0f,
            0x4e, 0x72, 0x26, 0xee, 0x14, 0xc3, 0xa1, 0xfb, 0x4d, 0xf3, 0x9c, 0x43, 0xbb, 0xe2,
            0xef, 0xc7, 0xbf, 0xd8,
        ],
    ),
    // 15G
    (
        &[
            0xf0, 0x45, 0x4d, 0xc6, 0x97, 0x1a, 0xba, 0xe7, 0xad, 0xfb, 0x37, 0x89, 0x99, 0x88,
            0x82, 0x65, 0xae, 0x03, 0xaf, 0x92, 0xde, 0x3a, 0x0e, 0xf1, 0x63, 0x66, 0x8c, 0x63,
            0xe5, 0x9b, 0x9d, 0x5f,
        ],
        &[
            0xb5, 0xb9, 0x3e, 0xe3, 0x59, 0x2e, 0x2d, 0x1f, 0x4e, 0x65, 0x94, 0xe5, 0x1f, 0x96,
            0x43, 0xe6, 0x2a, 0x3b, 0x21, 0xce, 0x75, 0xb5, 0xfa, 0x3f, 0x47, 0xe5, 0x9c, 0xde,
            0x0d, 0x03, 0x4f, 0x36,
        ],
    ),
];

fn verify_pss(
    key: &rsa::RsaPublicKey,
    hash: Option<HashAlg>,
    salt_len: usize,
    digest: &[u8],
    signature: &[u8],
) -> Result<()> {
    let scheme = match hash {
        Some(HashAlg::Sha1) => rsa::Pss::new_with_salt::<sha1::Sha1>(salt_len),
        Some(HashAlg::Sha256) => rsa::Pss::new_with_salt::<sha2::Sha256>(salt_len),
        Some(HashAlg::Sha384) => rsa::Pss::new_with_salt::<sha2::Sha384>(salt_len),
        Some(HashAlg::Sha512) => rsa::Pss::new_with_salt::<sha2::Sha512>(salt_len),
        // PSS needs its hash; a request without one was refused before it reached the card.
        None => return Err(refused("RSASSA-PSS without a hash".to_owned())),
    };
    key.verify(scheme, digest, signature).map_err(|_| refused("RSASSA-PSS".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use rand_core::OsRng;

    fn rsa_pair() -> (rsa::RsaPrivateKey, PublicKey) {
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let public = PublicKey::rsa(&private.n().to_bytes_be(), &private.e().to_bytes_be());
        (private, public)
    }

    #[test]
    fn rsa_pkcs1_pss_and_raw_signatures_verify_and_flipped_ones_do_not() {
        let (private, public) = rsa_pair();
        let digest = HashAlg::Sha256.digest(b"message");
        // RFC 8017 §8.2.1 with the host's own implementation.
        let sig = private.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest).unwrap();
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::Pkcs1, data: &digest };
        verify_signature(&public, &request, &sig).unwrap();
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        let err = verify_signature(&public, &request, &flipped).unwrap_err();
        assert!(err.to_string().starts_with("sign: the card's signature does not verify"), "{err}");
        assert!(verify_signature(&public, &request, &sig[1..]).is_err());
        let mut long = sig.clone();
        long.push(0);
        assert!(verify_signature(&public, &request, &long).is_err());
        // The same block signed raw, and as a prepared DigestInfo.
        let info = HashAlg::Sha256.digest_info(&digest).unwrap();
        let prepared = SignRequest { hash: None, padding: SignPadding::Pkcs1, data: &info };
        verify_signature(&public, &prepared, &sig).unwrap();
        let block = pkcs1_v15_sign_block(&info, 128).unwrap();
        let raw = SignRequest { hash: None, padding: SignPadding::None, data: &block };
        verify_signature(&public, &raw, &sig).unwrap();
        // PSS.
        let pss = private
            .sign_with_rng(&mut OsRng, rsa::Pss::new_with_salt::<sha2::Sha256>(32), &digest)
            .unwrap();
        let request = SignRequest {
            hash: Some(HashAlg::Sha256),
            padding: SignPadding::Pss { salt_len: 32 },
            data: &digest,
        };
        verify_signature(&public, &request, &pss).unwrap();
        assert!(verify_signature(&public, &request, &sig).is_err());
        // A representative >= n.
        assert!(verify_signature(&public, &raw, &[0xFF; 128]).is_err());
    }

    /// The NAF digits add up to the number, are odd or zero and below 2^(w-1) in size, and
    /// no two non-zero digits are closer than `w`.
    #[test]
    fn naf_digits_rebuild_the_number() {
        use rand_core::RngCore;
        let mut rng = OsRng;
        let mut numbers: Vec<Vec<u8>> = vec![vec![0; 32], vec![0xFF; 32], vec![0xFF; 48], vec![1]];
        for len in [1usize, 7, 8, 9, 32, 48] {
            for _ in 0..50 {
                let mut n = vec![0u8; len];
                rng.fill_bytes(&mut n);
                numbers.push(n);
            }
        }
        for n in numbers {
            let digits = naf(&n, NAF_WIDTH);
            // Positive and negative digits summed apart: n = plus - minus.
            let (mut plus, mut minus) = (rsa::BigUint::from(0u8), rsa::BigUint::from(0u8));
            for (i, &d) in digits.iter().enumerate() {
                assert!(d == 0 || (d % 2 != 0 && d.unsigned_abs() < 16), "{d}");
                if d != 0 {
                    let next = digits.get(i + 1..i + NAF_WIDTH as usize).unwrap_or(&[]);
                    assert!(next.iter().all(|&x| x == 0), "{n:02x?}: digits too close");
                }
                let term = rsa::BigUint::from(d.unsigned_abs()) << i;
                if d > 0 {
                    plus += term;
                } else {
                    minus += term;
                }
            }
            assert_eq!(plus, rsa::BigUint::from_bytes_be(&n) + minus, "{n:02x?}");
        }
    }

    const NO_TABLE: &[(&[u8], &[u8])] = &[];

    #[test]
    fn p256_table_is_the_odd_multiples_of_g() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        for (k, (x, y)) in (1u64..16).step_by(2).zip(P256_G_ODD_MULTIPLES.iter().copied()) {
            let point = (p256::ProjectivePoint::GENERATOR * p256::Scalar::from(k)).to_affine();
            let point = point.to_encoded_point(false);
            assert_eq!(point.x().unwrap().as_slice(), x, "{k}G x");
            assert_eq!(point.y().unwrap().as_slice(), y, "{k}G y");
        }
        // And the P-256 check agrees with the table computed (none given).
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let digest = HashAlg::Sha256.digest(b"table");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let (x, y) = (point.x().unwrap(), point.y().unwrap());
        assert!(ecdsa_check::<p256::NistP256>(x, y, &digest, &sig, NO_TABLE).is_ok());
        assert!(ecdsa_check::<p256::NistP256>(x, y, &digest, &sig, P256_G_ODD_MULTIPLES).is_ok());
        let other = HashAlg::Sha256.digest(b"other");
        assert!(ecdsa_check::<p256::NistP256>(x, y, &other, &sig, NO_TABLE).is_err());
    }

    fn check256(
        key: &p256::ecdsa::VerifyingKey,
        digest: &[u8],
        sig: &p256::ecdsa::Signature,
    ) -> Result<()> {
        let point = key.to_encoded_point(false);
        ecdsa_check::<p256::NistP256>(
            point.x().unwrap(),
            point.y().unwrap(),
            digest,
            sig,
            P256_G_ODD_MULTIPLES,
        )
    }

    fn check384(
        key: &p384::ecdsa::VerifyingKey,
        digest: &[u8],
        sig: &p384::ecdsa::Signature,
    ) -> Result<()> {
        let point = key.to_encoded_point(false);
        ecdsa_check::<p384::NistP384>(point.x().unwrap(), point.y().unwrap(), digest, sig, NO_TABLE)
    }

    /// The variable-time check agrees with the `ecdsa` crate's own verification on good
    /// signatures, flipped ones, other digests and other keys (P-256 and P-384, digests of
    /// 24 to 64 bytes).
    #[test]
    fn ecdsa_check_agrees_with_the_ecdsa_crate() {
        use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
        use rand_core::RngCore;
        let mut rng = OsRng;
        for round in 0..60 {
            let mut digest = vec![0u8; [24, 32, 48, 64][round % 4]];
            rng.fill_bytes(&mut digest);
            let mut other = digest.clone();
            other[round % 24] ^= 1 << (round % 8); // within the bits both curves use
            {
                let sk = p256::ecdsa::SigningKey::random(&mut rng);
                let vk = *sk.verifying_key();
                let stranger = *p256::ecdsa::SigningKey::random(&mut rng).verifying_key();
                let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
                let mut bad = sig.to_bytes().to_vec();
                bad[round % 64] ^= 1 << (round % 8);
                let bad = p256::ecdsa::Signature::from_slice(&bad);
                for (key, d, s) in [
                    (vk, &digest, Some(sig)),
                    (vk, &other, Some(sig)),
                    (stranger, &digest, Some(sig)),
                    (vk, &digest, bad.ok()),
                ] {
                    let Some(s) = s else { continue };
                    let ours = check256(&key, d, &s).is_ok();
                    assert_eq!(ours, key.verify_prehash(d, &s).is_ok(), "P-256 round {round}");
                }
                assert!(check256(&vk, &digest, &sig).is_ok());
            }
            {
                let sk = p384::ecdsa::SigningKey::random(&mut rng);
                let vk = *sk.verifying_key();
                let sig: p384::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
                let mut bad = sig.to_bytes().to_vec();
                bad[round % 96] ^= 1 << (round % 8);
                let ours = check384(&vk, &digest, &sig);
                assert_eq!(ours.is_ok(), vk.verify_prehash(&digest, &sig).is_ok());
                assert!(ours.is_ok(), "P-384 round {round}");
                assert!(check384(&vk, &other, &sig).is_err());
                if let Ok(bad) = p384::ecdsa::Signature::from_slice(&bad) {
                    assert!(check384(&vk, &digest, &bad).is_err());
                }
            }
        }
        // A digest shorter than half the field is refused, as by the ecdsa crate.
        let sk = p256::ecdsa::SigningKey::random(&mut rng);
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&[7u8; 32]).unwrap();
        assert!(check256(sk.verifying_key(), &[7u8; 15], &sig).is_err());
    }

    /// Keys that make the interleaved sum meet its special cases (Q = G, Q = -G, Q = 2G:
    /// table entries equal or opposite to the running sum): the check still agrees with the
    /// `ecdsa` crate, for good and bad signatures.
    #[test]
    fn ecdsa_check_with_keys_near_the_generator() {
        use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
        use p256::elliptic_curve::ff::PrimeField;
        let one = p256::Scalar::ONE;
        for d in [one, one + one, one + one + one, -one, -(one + one)] {
            let sk = p256::ecdsa::SigningKey::from_bytes(&d.to_repr()).unwrap();
            let vk = *sk.verifying_key();
            for round in 0..20u8 {
                let digest = HashAlg::Sha256.digest(&[round]);
                let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
                assert!(check256(&vk, &digest, &sig).is_ok());
                let other = HashAlg::Sha256.digest(&[round, 1]);
                assert_eq!(
                    check256(&vk, &other, &sig).is_ok(),
                    vk.verify_prehash(&other, &sig).is_ok()
                );
                assert!(check256(&vk, &other, &sig).is_err());
            }
        }
    }

    /// The square-and-multiply power equals num-bigint-dig's `modpow` (public exponents of
    /// every size from 1 to 33 bits, random bases and odd moduli).
    #[test]
    fn public_power_equals_modpow() {
        use rand_core::RngCore;
        let mut rng = OsRng;
        for round in 0..40u32 {
            let mut n = vec![0u8; 64 + (round as usize % 3) * 32];
            rng.fill_bytes(&mut n);
            n[0] |= 0x80;
            *n.last_mut().unwrap() |= 1;
            let n = rsa::BigUint::from_bytes_be(&n);
            let mut s = vec![0u8; 40];
            rng.fill_bytes(&mut s);
            let s = rsa::BigUint::from_bytes_be(&s);
            let e = rsa::BigUint::from(
                [3u64, 17, 65537, (1 << 33) - 1, 1, 2][round as usize % 6]
                    + u64::from(round / 6 * 2),
            );
            assert_eq!(public_power(&s, &e, &n), s.modpow(&e, &n), "e = {e}");
        }
    }

    #[test]
    fn ecdsa_signatures_verify_and_others_do_not() {
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let point = sk.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        let public = PublicKey::Ec { curve: Curve::P256, point };
        let digest = HashAlg::Sha256.digest(b"message");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &digest };
        verify_signature(&public, &request, &sig.to_bytes()).unwrap();
        let mut flipped = sig.to_bytes().to_vec();
        flipped[40] ^= 0x80;
        assert!(verify_signature(&public, &request, &flipped).is_err());
        assert!(verify_signature(&public, &request, &flipped[..63]).is_err());
        assert!(verify_signature(&public, &request, &[]).is_err());
        let other = HashAlg::Sha256.digest(b"other");
        let request =
            SignRequest { hash: Some(HashAlg::Sha256), padding: SignPadding::None, data: &other };
        assert!(verify_signature(&public, &request, &sig.to_bytes()).is_err());
    }
}
