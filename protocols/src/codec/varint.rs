//! Unsigned LEB128 varints, as protobuf, multiformats and CAR use them.

/// Appends `v` as a varint.
pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The encoded length of `v`.
pub fn encoded_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a varint at the start of `buf`: the value and the bytes it used, or `None` when
/// `buf` ends first or the value overflows 64 bits.
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        let low = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        value |= low << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads a varint from a byte stream: `Ok(None)` at a clean end of stream before any byte.
pub fn read<R: std::io::Read>(r: &mut R) -> std::io::Result<Option<u64>> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut b = [0u8; 1];
        match r.read_exact(&mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && i == 0 => return Ok(None),
            Err(e) => return Err(e),
        }
        if i == 9 && b[0] > 1 {
            break;
        }
        value |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "varint overflows 64 bits",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(v in any::<u64>()) {
            let mut buf = Vec::new();
            encode(v, &mut buf);
            prop_assert_eq!(buf.len(), encoded_len(v));
            prop_assert_eq!(decode(&buf), Some((v, buf.len())));
            prop_assert_eq!(read(&mut &buf[..]).unwrap(), Some(v));
        }
    }

    #[test]
    fn truncated_and_overflowing() {
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[0xff; 11]), None);
        assert_eq!(read(&mut &[][..]).unwrap(), None);
        assert!(read(&mut &[0x80][..]).is_err());
    }
}
