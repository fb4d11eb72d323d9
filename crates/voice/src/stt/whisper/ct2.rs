//! A reader for CTranslate2's `model.bin`: a flat list of named tensors.
//!
//! The Whisper weights we can fetch from a package registry come converted
//! for CTranslate2, whose runtime is C++. Its file format is simple enough to
//! read directly, which keeps the engine pure Rust: a little-endian header
//! (`u32` format version, spec name, `u32` spec revision), then `u32` variable
//! count and per variable: name, `u8` rank, `u32` dims, `u8` type id, `u32`
//! byte count, raw data; then `u32` alias count and (alias, target) name
//! pairs. Strings are a `u16` length followed by that many bytes, the last one
//! a NUL. Only format version 6 is accepted: it is the one we have checked.
//!
//! The parser never trusts a length: every read is bounds-checked, so a
//! truncated or corrupt file is an error, not a panic.

use std::collections::HashMap;
use std::ops::Range;

/// The file format version this reader understands.
const SUPPORTED_VERSION: u32 = 6;

/// Element type of a variable, as CTranslate2 numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable's header; its bytes live in [`Ct2File::bytes`].
#[derive(Debug, Clone)]
struct RawVariable {
    shape: Vec<usize>,
    dtype: DType,
    range: Range<usize>,
}

/// A borrowed view of one variable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Variable<'a> {
    pub shape: &'a [usize],
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// The value of a scalar integer variable (model flags, head counts).
    pub(crate) fn scalar_int(&self) -> Option<i64> {
        if self.shape.iter().product::<usize>() != 1 {
            return None;
        }
        let d = self.data;
        Some(match self.dtype {
            DType::I8 => i64::from(*d.first()? as i8),
            DType::I16 => i64::from(i16::from_le_bytes(d.get(..2)?.try_into().ok()?)),
            DType::I32 => i64::from(i32::from_le_bytes(d.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// A parsed `model.bin`: the whole file in memory plus an index into it.
#[derive(Debug)]
pub(crate) struct Ct2File {
    /// Name of the model spec, e.g. `WhisperSpec`.
    pub spec: String,
    bytes: Vec<u8>,
    variables: HashMap<String, RawVariable>,
    aliases: HashMap<String, String>,
}

impl Ct2File {
    /// Parses a whole `model.bin` held in memory.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
        };
        let version = r.u32()?;
        if version != SUPPORTED_VERSION {
            return Err(format!(
                "unsupported CTranslate2 format version {version} (expected {SUPPORTED_VERSION})"
            ));
        }
        let spec = r.string()?;
        let _revision = r.u32()?;
        let count = r.u32()?;
        let mut variables = HashMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()?;
            let shape = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let type_id = r.u8()?;
            let dtype = DType::from_id(type_id)
                .ok_or_else(|| format!("variable {name}: unknown type id {type_id}"))?;
            let len = r.u32()? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| format!("variable {name}: shape {shape:?} overflows"))?;
            if len != expected {
                return Err(format!(
                    "variable {name}: {len} bytes for shape {shape:?} of {dtype:?}"
                ));
            }
            let range = r.skip(len)?;
            variables.insert(
                name,
                RawVariable {
                    shape,
                    dtype,
                    range,
                },
            );
        }
        let mut aliases = HashMap::new();
        let alias_count = r.u32()?;
        for _ in 0..alias_count {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        Ok(Self {
            spec,
            bytes,
            variables,
            aliases,
        })
    }

    /// The variable called `name`, following an alias if there is one.
    pub(crate) fn get(&self, name: &str) -> Option<Variable<'_>> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        let raw = self.variables.get(name)?;
        Some(Variable {
            shape: &raw.shape,
            dtype: raw.dtype,
            data: self.bytes.get(raw.range.clone())?,
        })
    }

    /// Whether a variable (or alias) called `name` exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn skip(&mut self, len: usize) -> Result<Range<usize>, String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("file truncated at byte {}", self.pos))?;
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let range = self.skip(N)?;
        self.bytes[range]
            .try_into()
            .map_err(|_| "internal length error".to_owned())
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = usize::from(u16::from_le_bytes(self.take()?));
        let range = self.skip(len)?;
        let raw = &self.bytes[range];
        // The stored length counts a trailing NUL.
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| "a name is not UTF-8".to_owned())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a CTranslate2 file in memory, for tests of this parser and of
    /// the model loader.
    #[derive(Default)]
    pub(crate) struct Writer {
        variables: Vec<(String, Vec<u32>, u8, Vec<u8>)>,
        aliases: Vec<(String, String)>,
    }

    fn push_string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl Writer {
        pub(crate) fn var(mut self, name: &str, shape: &[u32], type_id: u8, data: Vec<u8>) -> Self {
            self.variables
                .push((name.to_owned(), shape.to_vec(), type_id, data));
            self
        }

        pub(crate) fn f32s(self, name: &str, shape: &[u32], values: &[f32]) -> Self {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.var(name, shape, 0, data)
        }

        pub(crate) fn alias(mut self, alias: &str, target: &str) -> Self {
            self.aliases.push((alias.to_owned(), target.to_owned()));
            self
        }

        pub(crate) fn finish(self, version: u32) -> Vec<u8> {
            let mut out = version.to_le_bytes().to_vec();
            push_string(&mut out, "WhisperSpec");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.variables.len() as u32).to_le_bytes());
            for (name, shape, type_id, data) in &self.variables {
                push_string(&mut out, name);
                out.push(shape.len() as u8);
                for d in shape {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.push(*type_id);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (alias, target) in &self.aliases {
                push_string(&mut out, alias);
                push_string(&mut out, target);
            }
            out
        }
    }

    fn sample() -> Vec<u8> {
        Writer::default()
            .f32s("a/weight", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .var("a/num_heads", &[], 2, 6i16.to_le_bytes().to_vec())
            .var("a/flag", &[], 1, vec![1])
            .var("h", &[2], 4, vec![0x00, 0x3c, 0x00, 0xc0])
            .alias("b/weight", "a/weight")
            .finish(6)
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let file = Ct2File::parse(sample()).unwrap();
        assert_eq!(file.spec, "WhisperSpec");
        let w = file.get("a/weight").unwrap();
        assert_eq!(w.shape, &[2, 3]);
        assert_eq!(w.dtype, DType::F32);
        assert_eq!(&w.data[4..8], &2.0f32.to_le_bytes());
        assert_eq!(file.get("a/num_heads").unwrap().scalar_int(), Some(6));
        assert_eq!(file.get("a/flag").unwrap().scalar_int(), Some(1));
        assert_eq!(file.get("h").unwrap().dtype, DType::F16);
        assert_eq!(file.get("b/weight").unwrap().data, w.data);
        assert!(file.contains("b/weight"));
        assert!(!file.contains("c"));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(
                Ct2File::parse(bytes[..len].to_vec()).is_err(),
                "truncated at {len}"
            );
        }
    }

    #[test]
    fn rejects_other_versions_and_inconsistent_sizes() {
        let err = Ct2File::parse(Writer::default().finish(5)).unwrap_err();
        assert!(err.contains("version 5"), "{err}");
        let bad = Writer::default().var("x", &[3], 0, vec![0; 8]).finish(6);
        assert!(Ct2File::parse(bad).unwrap_err().contains("8 bytes"));
        let unknown = Writer::default().var("x", &[1], 9, vec![0]).finish(6);
        assert!(Ct2File::parse(unknown).unwrap_err().contains("type id 9"));
    }
}
