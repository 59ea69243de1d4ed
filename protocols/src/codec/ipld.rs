//! Blocks as the IPLD data model, the way Kubo's `dag` commands see them: DAG-CBOR (the
//! protocols crate's canonical codec, IPLD profile), DAG-JSON text, dag-pb as its
//! `{"Data", "Links": [{"Hash", "Name", "Tsize"}]}` form, and raw blocks as bytes; plus paths
//! into a value. Spec: <https://ipld.io/specs/codecs/dag-json/spec/>,
//! <https://ipld.io/specs/codecs/dag-pb/spec/>.
//!
//! Everything decoded here may come from outside: nesting is bounded by [`MAX_DEPTH`], and
//! what is not canonical DAG-CBOR or well-formed JSON is refused, never guessed at.

use std::fmt::Write as _;

pub use super::cbor::DAG_CBOR;
use super::cbor::{CborError, Float, Value};
use cid::Cid;
use multibase::Base;

use super::varint;

/// Multicodec of dag-pb.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multicodec of DAG-JSON.
pub const DAG_JSON: u64 = 0x0129;
/// The deepest nesting of lists and maps a value may have.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not a value of a codec, or a value cannot be written in one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The codec is not one this node reads or writes.
    #[error("unsupported codec {0} (dag-json, dag-cbor, dag-pb or raw)")]
    Codec(String),
    /// DAG-CBOR that does not decode.
    #[error("invalid DAG-CBOR: {0}")]
    Cbor(#[from] CborError),
    /// JSON that does not parse, or is not DAG-JSON.
    #[error("invalid DAG-JSON: {0}")]
    Json(String),
    /// dag-pb that does not decode.
    #[error("invalid dag-pb: {0}")]
    Pb(&'static str),
    /// A value of the wrong shape for the codec.
    #[error("{0}")]
    Shape(String),
}

/// The multicodec of a codec name as Kubo spells it.
pub fn codec(name: &str) -> Result<u64, Error> {
    match name {
        "dag-json" => Ok(DAG_JSON),
        "dag-cbor" => Ok(DAG_CBOR),
        "dag-pb" => Ok(DAG_PB),
        "raw" => Ok(RAW),
        other => Err(Error::Codec(format!("{other:?}"))),
    }
}

/// A block's bytes as a value, by its codec.
pub fn decode(codec: u64, data: &[u8]) -> Result<Value, Error> {
    match codec {
        RAW => Ok(Value::Bytes(data.to_vec())),
        DAG_PB => from_pb(data),
        DAG_CBOR => Ok(Value::decode_ipld(data, MAX_DEPTH)?),
        DAG_JSON => from_json(data),
        other => Err(Error::Codec(format!("0x{other:x}"))),
    }
}

/// A value written in a codec.
pub fn encode(codec: u64, value: &Value) -> Result<Vec<u8>, Error> {
    match (codec, value) {
        (RAW, Value::Bytes(b)) => Ok(b.clone()),
        (RAW, _) => Err(Error::Shape("only bytes can be written as raw".into())),
        (DAG_PB, v) => to_pb(v),
        (DAG_CBOR, v) => Ok(v.encode()),
        (DAG_JSON, v) => {
            let mut out = String::new();
            write_json(v, &mut out);
            Ok(out.into_bytes())
        }
        (other, _) => Err(Error::Codec(format!("0x{other:x}"))),
    }
}

/// The value at `segment` under `value`: a map's field or a list's index.
pub fn step<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k == segment).map(|(_, v)| v),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

/// Map keys in the order DAG-CBOR writes them (and this module keeps maps in): shorter
/// first, then bytewise. DAG-JSON writes them bytewise (checked against Kubo's CIDs).
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Bytes in DAG-JSON: standard base64 without padding.
fn base64(bytes: &[u8]) -> String {
    Base::Base64.encode(bytes)
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Uint(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Negative(n) => {
            let _ = write!(out, "-{}", u128::from(*n) + 1);
        }
        Value::Float(x) => out.push_str(&serde_json::Number::from_f64(x.get()).map_or_else(
            // Finite by construction; a float without a JSON form cannot occur.
            || "null".to_string(),
            |n| n.to_string(),
        )),
        Value::Text(t) => push_string(t, out),
        Value::Bytes(b) => {
            out.push_str("{\"/\":{\"bytes\":");
            push_string(&base64(b), out);
            out.push_str("}}");
        }
        Value::Link(cid) => {
            out.push_str("{\"/\":");
            push_string(&cid.to_string(), out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

fn push_string(s: &str, out: &mut String) {
    // serde_json escapes exactly what JSON requires.
    if let Ok(text) = serde_json::to_string(s) {
        out.push_str(&text);
    }
}

/// Parses DAG-JSON: `{"/": "<cid>"}` is a link, `{"/": {"bytes": "<base64>"}}` bytes.
pub fn from_json(data: &[u8]) -> Result<Value, Error> {
    let json: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| Error::Json(e.to_string()))?;
    json_value(&json, 0)
}

fn json_value(json: &serde_json::Value, depth: usize) -> Result<Value, Error> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(Error::Json(format!("nested deeper than {MAX_DEPTH}")));
    }
    Ok(match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else if let Some(i) = n.as_i64() {
                // Negative: -1 - m = i.
                Value::Negative(i.unsigned_abs() - 1)
            } else {
                let x = n.as_f64().and_then(Float::new).ok_or_else(|| {
                    Error::Json(format!("number {n} is not a finite float or an integer"))
                })?;
                Value::Float(x)
            }
        }
        J::String(s) => Value::Text(s.clone()),
        J::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| json_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => {
            if let (1, Some(slash)) = (map.len(), map.get("/")) {
                match slash {
                    J::String(s) => {
                        let cid = Cid::try_from(s.as_str())
                            .map_err(|e| Error::Json(format!("bad link {s:?}: {e}")))?;
                        return Ok(Value::Link(cid));
                    }
                    J::Object(inner) if inner.len() == 1 => {
                        if let Some(J::String(b)) = inner.get("bytes") {
                            let bytes = Base::Base64
                                .decode(b.trim_end_matches('='))
                                .map_err(|e| Error::Json(format!("bad bytes {b:?}: {e}")))?;
                            return Ok(Value::Bytes(bytes));
                        }
                    }
                    _ => {}
                }
            }
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                entries.push((k.clone(), json_value(v, depth + 1)?));
            }
            entries.sort_by(|a, b| key_order(&a.0, &b.0));
            Value::Map(entries)
        }
    })
}

/// One protobuf field: its number and either bytes or a varint.
enum Field<'a> {
    Bytes(u64, &'a [u8]),
    Varint(u64, u64),
}

/// The fields of a protobuf message, refusing wire types dag-pb does not use.
fn fields(mut buf: &[u8]) -> Result<Vec<Field<'_>>, Error> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (key, n) = varint::decode(buf).ok_or(Error::Pb("bad field key"))?;
        buf = &buf[n..];
        let (value, n) = varint::decode(buf).ok_or(Error::Pb("truncated field"))?;
        buf = &buf[n..];
        match key & 7 {
            0 => out.push(Field::Varint(key >> 3, value)),
            2 => {
                let len = usize::try_from(value)
                    .ok()
                    .filter(|&l| l <= buf.len())
                    .ok_or(Error::Pb("field longer than the block"))?;
                out.push(Field::Bytes(key >> 3, &buf[..len]));
                buf = &buf[len..];
            }
            _ => return Err(Error::Pb("unexpected wire type")),
        }
    }
    Ok(out)
}

/// A dag-pb block as the data model; absent `Data`, `Name` and `Tsize` stay absent.
pub fn from_pb(block: &[u8]) -> Result<Value, Error> {
    let mut data = None;
    let mut links = Vec::new();
    for field in fields(block)? {
        match field {
            Field::Bytes(1, d) if data.is_none() => data = Some(Value::Bytes(d.to_vec())),
            Field::Bytes(2, l) => links.push(pb_link(l)?),
            _ => return Err(Error::Pb("unexpected field in PBNode")),
        }
    }
    let mut node = Vec::with_capacity(2);
    if let Some(d) = data {
        node.push(("Data".to_string(), d));
    }
    node.push(("Links".to_string(), Value::Array(links)));
    Ok(Value::Map(node))
}

fn pb_link(buf: &[u8]) -> Result<Value, Error> {
    let (mut hash, mut name, mut tsize) = (None, None, None);
    for field in fields(buf)? {
        match field {
            Field::Bytes(1, h) if hash.is_none() => {
                let cid = Cid::try_from(h).map_err(|_| Error::Pb("bad CID in a link"))?;
                hash = Some(Value::Link(cid));
            }
            Field::Bytes(2, n) if name.is_none() => {
                let n = std::str::from_utf8(n).map_err(|_| Error::Pb("link name not UTF-8"))?;
                name = Some(Value::Text(n.to_string()));
            }
            Field::Varint(3, t) if tsize.is_none() => tsize = Some(Value::Uint(t)),
            _ => return Err(Error::Pb("unexpected field in PBLink")),
        }
    }
    let mut link = vec![(
        "Hash".to_string(),
        hash.ok_or(Error::Pb("link without Hash"))?,
    )];
    link.extend(name.map(|n| ("Name".to_string(), n)));
    link.extend(tsize.map(|t| ("Tsize".to_string(), t)));
    Ok(Value::Map(link))
}

fn put_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint::encode((field << 3) | 2, out);
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// The value in dag-pb's form written as a dag-pb block: links first, then data.
pub fn to_pb(value: &Value) -> Result<Vec<u8>, Error> {
    let shape = |what: &str| Error::Shape(format!("not a dag-pb node: {what}"));
    let Value::Map(entries) = value else {
        return Err(shape("expected a map with Links and optional Data"));
    };
    let (mut data, mut links) = (None, None);
    for (k, v) in entries {
        match (k.as_str(), v) {
            ("Data", Value::Bytes(b)) => data = Some(b),
            ("Links", Value::Array(l)) => links = Some(l),
            (k, _) => return Err(shape(&format!("unexpected or mistyped field {k:?}"))),
        }
    }
    let links = links.ok_or_else(|| shape("Links is required"))?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for link in links {
        let Value::Map(fields) = link else {
            return Err(shape("a link is not a map"));
        };
        let (mut hash, mut name, mut tsize) = (None, None, None);
        for (k, v) in fields {
            match (k.as_str(), v) {
                ("Hash", Value::Link(c)) => hash = Some(c),
                ("Name", Value::Text(n)) => name = Some(n),
                ("Tsize", Value::Uint(t)) => tsize = Some(*t),
                (k, _) => return Err(shape(&format!("unexpected or mistyped link field {k:?}"))),
            }
        }
        buf.clear();
        put_bytes(
            1,
            &hash.ok_or_else(|| shape("a link without Hash"))?.to_bytes(),
            &mut buf,
        );
        if let Some(n) = name {
            put_bytes(2, n.as_bytes(), &mut buf);
        }
        if let Some(t) = tsize {
            varint::encode(3 << 3, &mut buf);
            varint::encode(t, &mut buf);
        }
        put_bytes(2, &buf, &mut out);
    }
    if let Some(d) = data {
        put_bytes(1, d, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Vectors from Kubo's own `dag` tests (sharness t0053-dag.sh, Kubo 0.22) and the IPLD
    //! codec fixtures they use: the same input must give Kubo's CIDs and renderings.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::codec::testing::cid_for;
    use sha2::Digest;

    /// The fixture `dagpb_Data_some` in its three codecs.
    const PB: &[u8] = &[0x0a, 0x05, 0x00, 0x01, 0x02, 0x03, 0x04];
    const CBOR_B64: &str = "omREYXRhRQABAgMEZUxpbmtzgA";
    const JSON: &str = r#"{"Data":{"/":{"bytes":"AAECAwQ"}},"Links":[]}"#;

    fn put(input: u64, data: &[u8], store: u64) -> String {
        let value = decode(input, data).unwrap();
        cid_for(store, &encode(store, &value).unwrap(), false).to_string()
    }

    #[test]
    fn one_node_in_three_codecs_gives_kubos_cids() {
        let cbor = Base::Base64.decode(CBOR_B64).unwrap();
        for (codec, data) in [
            (DAG_PB, PB),
            (DAG_CBOR, cbor.as_slice()),
            (DAG_JSON, JSON.as_bytes()),
        ] {
            assert_eq!(
                put(codec, data, DAG_CBOR),
                "bafyreieculsmrexh3ty5jentbvuku452o27mst4h2tq2rb2zntqhgcstji"
            );
            assert_eq!(
                put(codec, data, DAG_PB),
                "bafybeibazl2z4vqp2tmwcfag6wirmtpnomxknqcgrauj7m2yisrz3qjbom"
            );
            assert_eq!(
                put(codec, data, DAG_JSON),
                "baguqeerajwksxu3lxpomdwxvosl542zl3xknhjgxtq3277gafrhl6vdw5tcq"
            );
            let value = decode(codec, data).unwrap();
            assert_eq!(encode(DAG_JSON, &value).unwrap(), JSON.as_bytes());
        }
        // `dag get --output-codec=dag-cbor` of the dag-pb node, by its sha2-256.
        let value = decode(DAG_PB, PB).unwrap();
        let digest = sha2::Sha256::digest(encode(DAG_CBOR, &value).unwrap());
        assert_eq!(
            hex(&digest),
            "82a2e4c892e7dcf1d491b30d68aa73ba76bec94f87d4e1a887596ce0730a534a"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn kubos_hello_world_object() {
        // HASH1..3: `ipfs add` of "foo\n", "bar\n", "baz\n".
        let leaf = |s: &str| {
            let mut block = Vec::new();
            crate::codec::pb::encode_leaf(s.as_bytes(), &mut block);
            cid_for(DAG_PB, &block, true).to_string()
        };
        let (h1, h2, h3) = (leaf("foo\n"), leaf("bar\n"), leaf("baz\n"));
        let object = format!(
            r#"{{"hello":"world","cats":[{{"/":"{h1}"}},{{"water":{{"/":"{h2}"}}}}],"magic":{{"/":"{h3}"}},"sub":{{"dict":"ionary","beep":[0,"bop"]}}}}"#
        );
        assert_eq!(
            put(DAG_JSON, object.as_bytes(), DAG_CBOR),
            "bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde"
        );
        assert_eq!(
            put(DAG_JSON, object.as_bytes(), DAG_JSON),
            "baguqeera6gviseelmbzn2ugoddo5vulxlshqs3kw5ymgsb6w4cabnoh4ldpa"
        );
        let value = decode(DAG_JSON, object.as_bytes()).unwrap();
        let sub = step(&value, "sub").unwrap();
        assert_eq!(
            encode(DAG_JSON, sub).unwrap(),
            br#"{"beep":[0,"bop"],"dict":"ionary"}"#
        );
        let bop = step(step(sub, "beep").unwrap(), "1").unwrap();
        assert_eq!(encode(DAG_JSON, bop).unwrap(), br#""bop""#);
        assert_eq!(
            put(DAG_JSON, br#"{"foo":"bar"}"#, DAG_CBOR),
            "bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq"
        );
        assert_eq!(
            put(DAG_JSON, br#"{"foo":"baz"}"#, DAG_CBOR),
            "bafyreibqp7zvp6dvrqhtkbwuzzk7jhtmfmngtiqjajqpm6gtw55o7kqzfi"
        );
    }

    #[test]
    fn a_unixfs_leaf_renders_as_kubo_renders_it() {
        let mut block = Vec::new();
        crate::codec::pb::encode_leaf(b"foobar\n", &mut block);
        let value = decode(DAG_PB, &block).unwrap();
        assert_eq!(
            encode(DAG_JSON, &value).unwrap(),
            br#"{"Data":{"/":{"bytes":"CAISB2Zvb2JhcgoYBw"}},"Links":[]}"#
        );
    }

    #[test]
    fn numbers_round_trip_through_both_codecs() {
        let json = br#"{"a":-1,"b":1.5,"c":18446744073709551615,"d":-9223372036854775808}"#;
        let value = decode(DAG_JSON, json).unwrap();
        let cbor = encode(DAG_CBOR, &value).unwrap();
        let back = decode(DAG_CBOR, &cbor).unwrap();
        assert_eq!(back, value);
        assert_eq!(encode(DAG_JSON, &back).unwrap(), json);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(decode(DAG_JSON, b"{").is_err());
        assert!(decode(DAG_JSON, br#"{"/":"not a cid"}"#).is_err());
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(decode(DAG_JSON, deep.as_bytes()).is_err());
        assert!(decode(DAG_PB, &[0x0a, 0x09, 0x00]).is_err());
        assert!(encode(RAW, &Value::Uint(1)).is_err());
        assert!(encode(DAG_PB, &Value::Map(vec![])).is_err());
        assert!(codec("dag-jose").is_err());
    }
}
