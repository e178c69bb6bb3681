//! A registry as bytes: every component type with its layout and declared fields. A room
//! file keeps its room's registry this way, and a client's join request carries its own
//! so that a room server can learn a new room's types from its first client.
//!
//! ```text
//! component types u32, each: name (u16 length, bytes), layout (u8 kind: 0 fixed,
//! 1 variable; u32 size), declared fields (u8 count, each: u8 kind, u32 offset, three u32
//! parameters)
//! ```
//!
//! Integers are little-endian. Decoding treats the bytes as hostile: every count is
//! bounded before anything is allocated for it, and the types are registered (so checked)
//! exactly as an engine's would be.

use crate::fields::{Field, FieldLayout, MAX_FIELDS};
use crate::registry::{Layout, Registry, MAX_COMPONENT_TYPES, MAX_NAME_BYTES};

/// Appends `registry` to `out`.
pub fn encode_registry(registry: &Registry, out: &mut Vec<u8>) {
    // At most MAX_COMPONENT_TYPES (4096) types, names of at most 255 bytes, 64 fields.
    put_u32(out, registry.len() as u32);
    for descriptor in registry.descriptors() {
        out.extend_from_slice(&(descriptor.name.len() as u16).to_le_bytes());
        out.extend_from_slice(descriptor.name.as_bytes());
        let (kind, size) = match descriptor.layout {
            Layout::Fixed(size) => (0u8, size),
            Layout::Variable { max } => (1u8, max),
        };
        out.push(kind);
        put_u32(out, size);
        let fields = registry
            .fields(descriptor.id)
            .map_or(&[][..], FieldLayout::fields);
        out.push(fields.len() as u8);
        for field in fields {
            put_field(out, field);
        }
    }
}

/// Reads a registry from the front of `bytes`: the registry, and how many bytes it took.
/// The error says what was wrong, for a log or a refusal.
pub fn decode_registry(bytes: &[u8]) -> Result<(Registry, usize), String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.u32("the component type count")? as usize;
    if count > MAX_COMPONENT_TYPES {
        return Err(format!(
            "{count} component types, at most {MAX_COMPONENT_TYPES}"
        ));
    }
    let mut registry = Registry::new();
    for _ in 0..count {
        let len = usize::from(r.u16("a component name")?);
        if len > MAX_NAME_BYTES {
            return Err(format!(
                "a component name of {len} bytes, at most {MAX_NAME_BYTES}"
            ));
        }
        let name = std::str::from_utf8(r.take(len, "a component name")?)
            .map_err(|_| "a component name is not UTF-8".to_owned())?;
        let layout = match (r.u8("a layout")?, r.u32("a layout")?) {
            (0, size) => Layout::Fixed(size),
            (1, max) => Layout::Variable { max },
            (kind, _) => return Err(format!("layout kind {kind}")),
        };
        let id = registry.register(name, layout).map_err(|e| e.to_string())?;
        let field_count = usize::from(r.u8("the field count")?);
        if field_count > MAX_FIELDS {
            return Err(format!(
                "{field_count} fields of {name:?}, at most {MAX_FIELDS}"
            ));
        }
        if field_count == 0 {
            continue;
        }
        let mut fields = Vec::with_capacity(field_count);
        for _ in 0..field_count {
            fields.push(read_field(&mut r)?);
        }
        let fields = FieldLayout::new(layout.max_bytes(), &fields)
            .map_err(|e| format!("fields of {name:?}: {e}"))?;
        registry
            .declare_fields(id, fields)
            .map_err(|e| e.to_string())?;
    }
    Ok((registry, r.at))
}

fn put_field(out: &mut Vec<u8>, field: &Field) {
    let (kind, offset, a, b, c) = match *field {
        Field::Position {
            offset,
            precision_mm,
        } => (0u8, offset, precision_mm.to_bits(), 0, 0),
        Field::Rotation {
            offset,
            precision_deg,
        } => (1, offset, precision_deg.to_bits(), 0, 0),
        Field::Scalar {
            offset,
            min,
            max,
            precision,
        } => (2, offset, min.to_bits(), max.to_bits(), precision.to_bits()),
        Field::Int { offset, bytes } => (3, offset, u32::from(bytes), 0, 0),
        Field::Flags { offset, bytes } => (4, offset, u32::from(bytes), 0, 0),
    };
    out.push(kind);
    for v in [offset, a, b, c] {
        put_u32(out, v);
    }
}

fn read_field(r: &mut Reader<'_>) -> Result<Field, String> {
    let kind = r.u8("a field")?;
    let offset = r.u32("a field")?;
    let (a, b, c) = (r.u32("a field")?, r.u32("a field")?, r.u32("a field")?);
    // One form per field: parameters a kind does not use are zero.
    let unused = match kind {
        2 => 0,
        _ => b | c,
    };
    if unused != 0 {
        return Err(format!("field kind {kind} with parameters it does not use"));
    }
    // Field::Int / Flags widths are 1..=8; anything wider is refused by FieldLayout::new.
    let width = u8::try_from(a).unwrap_or(u8::MAX);
    Ok(match kind {
        0 => Field::Position {
            offset,
            precision_mm: f32::from_bits(a),
        },
        1 => Field::Rotation {
            offset,
            precision_deg: f32::from_bits(a),
        },
        2 => Field::Scalar {
            offset,
            min: f32::from_bits(a),
            max: f32::from_bits(b),
            precision: f32::from_bits(c),
        },
        3 => Field::Int {
            offset,
            bytes: width,
        },
        4 => Field::Flags {
            offset,
            bytes: width,
        },
        other => return Err(format!("field kind {other}")),
    })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reads front to back; every read is bounded by what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(format!(
                "{what} runs past the end ({n} bytes wanted, {left} left)"
            ));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Field;

    fn registry() -> Registry {
        let mut registry = Registry::new();
        let transform = registry
            .register("acme.Transform", Layout::Fixed(28))
            .unwrap();
        registry
            .register("acme.Label", Layout::Variable { max: 256 })
            .unwrap();
        let fields = FieldLayout::new(
            28,
            &[
                Field::Position {
                    offset: 0,
                    precision_mm: 1.0,
                },
                Field::Rotation {
                    offset: 12,
                    precision_deg: 0.1,
                },
            ],
        )
        .unwrap();
        registry.declare_fields(transform, fields).unwrap();
        registry
    }

    #[test]
    fn a_registry_with_declared_fields_comes_back_with_the_same_hash() {
        let registry = registry();
        let mut bytes = vec![0xAA];
        encode_registry(&registry, &mut bytes);
        bytes.push(0xBB);
        let (back, used) = decode_registry(&bytes[1..]).expect("decodes");
        assert_eq!(used, bytes.len() - 2, "it says where it ended");
        assert_eq!(back.hash(), registry.hash());
        assert_eq!(back.descriptors(), registry.descriptors());
    }

    #[test]
    fn every_truncation_and_a_huge_count_are_refused_without_allocating_for_them() {
        let mut bytes = Vec::new();
        encode_registry(&registry(), &mut bytes);
        for len in 0..bytes.len() {
            assert!(decode_registry(&bytes[..len]).is_err(), "cut at {len}");
        }
        let err = decode_registry(&u32::MAX.to_le_bytes()).expect_err("huge count");
        assert!(err.contains("at most 4096"), "{err}");
        // A name that is not UTF-8.
        let mut bad = bytes.clone();
        bad[6] = 0xFF;
        assert!(decode_registry(&bad).is_err());
        // A position field (the first field, after the count, the name, the layout and the
        // field count) with a parameter it does not use: one form per registry.
        let first_field = 4 + 2 + "acme.Transform".len() + 1 + 4 + 1;
        let mut bad = bytes.clone();
        bad[first_field + 1 + 4 + 4] = 1;
        let err = decode_registry(&bad).expect_err("an unused parameter");
        assert!(err.contains("parameters it does not use"), "{err}");
    }
}
