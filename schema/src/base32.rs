//! Nix-style base32: the alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no `e o t u`), with
//! bytes consumed from the end, exactly as Nix writes store-path hashes. 20 bytes encode
//! to 32 characters; 32 bytes to 52.

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of the encoding of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// The digit of each byte value, or `INVALID`.
const DIGITS: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 32 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const INVALID: u8 = 0xff;

/// Encode `bytes` in Nix base32.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0u8; encoded_len(bytes.len())];
    encode_into(bytes, &mut out);
    // Every byte written is an ASCII digit of the alphabet.
    out.into_iter().map(char::from).collect()
}

/// Encode `bytes` into `out`, which must be exactly [`encoded_len`] long (no allocation).
pub fn encode_into(bytes: &[u8], out: &mut [u8]) {
    let len = out.len();
    for (k, slot) in out.iter_mut().enumerate() {
        let n = len - 1 - k;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = bytes[i] as u16 >> j;
        let hi = if i + 1 < bytes.len() {
            (bytes[i + 1] as u16) << (8 - j)
        } else {
            0
        };
        *slot = ALPHABET[((lo | hi) & 0x1f) as usize];
    }
}

/// Decode a Nix base32 string into exactly `n` bytes, or `None` if it is malformed.
pub fn decode(s: &str, n: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; n];
    decode_into(s.as_bytes(), &mut out).then_some(out)
}

/// Decode `s` into `out` (whose length is the number of bytes wanted); false if `s` is
/// malformed. `out` must start zeroed.
pub fn decode_into(s: &[u8], out: &mut [u8]) -> bool {
    let n = out.len();
    if s.len() != encoded_len(n) {
        return false;
    }
    for (k, &c) in s.iter().rev().enumerate() {
        let digit = DIGITS[c as usize];
        if digit == INVALID {
            return false;
        }
        let digit = digit as u16;
        let b = k * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= (digit << j) as u8;
        let carry = (digit << j) >> 8;
        if i + 1 < n {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return false;
        }
    }
    true
}

/// Whether `c` belongs to the alphabet.
pub fn is_digit(c: u8) -> bool {
    DIGITS[c as usize] != INVALID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
    }

    include!("../golden/golden.rs");

    /// Vectors printed by Nix 2.8 (`nix hash to-base32 --type sha256/sha1 <hex>`): the SHA-256 of the
    /// empty string, and a 20-byte ascending sequence (`schema/golden/vectors.txt`).
    #[test]
    fn nix_vectors() {
        let sha256_empty = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        let seq: Vec<u8> = (0u8..20).collect();
        assert_golden(&[
            ("base32.nix.sha256_empty", encode(&sha256_empty)),
            ("base32.nix.seq20", encode(&seq)),
        ]);
        for name in ["base32.nix.sha256_empty", "base32.nix.seq20"] {
            let text = golden(name);
            let bytes = decode(text, text.len() * 5 / 8).unwrap();
            assert_eq!(encode(&bytes), text, "{name} decodes and re-encodes");
        }
    }

    #[test]
    fn round_trip() {
        for n in [1usize, 5, 20, 32] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let s = encode(&bytes);
            assert_eq!(decode(&s, n).unwrap(), bytes, "n={n}");
        }
    }

    #[test]
    fn the_table_matches_the_alphabet() {
        for c in 0..=255u8 {
            assert_eq!(is_digit(c), ALPHABET.contains(&c), "{c}");
        }
        let all = std::str::from_utf8(ALPHABET).unwrap();
        let mut bytes = [0u8; 20];
        assert!(decode_into(all.as_bytes(), &mut bytes));
        assert_eq!(encode(&bytes), all);
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert!(decode("e", 1).is_none());
        assert!(decode("00", 2).is_none());
        // 52 characters carry 260 bits; setting any of the 4 beyond 256 is not canonical.
        let overflow = format!("z{}", "0".repeat(51));
        assert!(decode(&overflow, 32).is_none());
        // 32 characters carry exactly 160 bits, so every digit string decodes.
        assert!(decode(&"z".repeat(32), 20).is_some());
    }
}
