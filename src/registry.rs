//! Component types: names, layouts, ids and the registry peers compare at join time.

use std::fmt;

use rustc_hash::FxHashMap;

use crate::fields::{FieldError, FieldLayout};
use crate::hash::{fnv1a_32, hash64};

/// Longest accepted component name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Largest accepted component value, in bytes (fixed size or variable maximum).
pub const MAX_VALUE_BYTES: u32 = 1 << 20;
/// Most component types one registry holds; bounds what a peer can make us allocate.
pub const MAX_COMPONENT_TYPES: usize = 4096;

/// A component type id: FNV-1a-32 of the registered name, so every peer derives the
/// same id without negotiation. 0 is never a valid id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId(pub u32);

impl ComponentId {
    /// The id a name registers under.
    pub fn of_name(name: &str) -> Self {
        ComponentId(fnv1a_32(name.as_bytes()))
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// How the bytes of a component value are sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Every value has exactly this many bytes (0 makes a tag component).
    Fixed(u32),
    /// Values have any length from 0 up to this maximum.
    Variable {
        /// Largest accepted value, in bytes.
        max: u32,
    },
}

impl Layout {
    /// The largest value this layout admits.
    pub fn max_bytes(&self) -> u32 {
        match *self {
            Layout::Fixed(size) => size,
            Layout::Variable { max } => max,
        }
    }

    /// Whether a value of `len` bytes fits this layout.
    pub fn accepts(&self, len: usize) -> bool {
        match *self {
            Layout::Fixed(size) => len == size as usize,
            Layout::Variable { max } => len <= max as usize,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Fixed(size) => write!(f, "fixed {size} bytes"),
            Layout::Variable { max } => write!(f, "variable up to {max} bytes"),
        }
    }
}

/// Everything a peer needs to know about a component type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ComponentDescriptor {
    /// FNV-1a-32 of `name`.
    pub id: ComponentId,
    /// The registered name, e.g. `"acme.Transform"`.
    pub name: String,
    /// Size rule of the values.
    pub layout: Layout,
}

/// Why a registration or descriptor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The name is empty, too long, or its id would be 0.
    #[error("invalid component name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The layout exceeds [`MAX_VALUE_BYTES`] or a variable maximum is 0.
    #[error("invalid layout for component {name:?}: {layout} ({reason})")]
    InvalidLayout {
        /// The component name.
        name: String,
        /// The layout as given.
        layout: Layout,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The name is registered already with another layout.
    #[error("component {name:?} is registered as {registered}, not {requested}")]
    LayoutConflict {
        /// The component name.
        name: String,
        /// Layout it holds.
        registered: Layout,
        /// Layout asked for now.
        requested: Layout,
    },
    /// Two different names hash to one id.
    #[error("component names {existing:?} and {requested:?} collide on id {id}")]
    HashCollision {
        /// The shared id.
        id: ComponentId,
        /// The name registered first.
        existing: String,
        /// The name refused.
        requested: String,
    },
    /// A descriptor's id is not the FNV-1a-32 of its name.
    #[error("descriptor id {id} does not match name {name:?} (expected {expected})")]
    IdMismatch {
        /// The id carried.
        id: ComponentId,
        /// The name carried.
        name: String,
        /// The id the name hashes to.
        expected: ComponentId,
    },
    /// More than [`MAX_COMPONENT_TYPES`] types.
    #[error("registry is full ({MAX_COMPONENT_TYPES} component types)")]
    Full,
    /// A field layout for a type that is not registered, not of fixed size, of another
    /// size, or different from the one declared before.
    #[error("field layout of component {id}: {reason}")]
    Fields {
        /// The component type.
        id: ComponentId,
        /// What is wrong.
        reason: String,
    },
}

impl From<(ComponentId, FieldError)> for RegistryError {
    fn from((id, e): (ComponentId, FieldError)) -> Self {
        RegistryError::Fields {
            id,
            reason: e.to_string(),
        }
    }
}

/// The component types known to a world or replica, ordered by id.
///
/// Registry order (ascending id) is the order of component types in every snapshot and
/// delta, so it is the same on every peer whatever order the types were registered in.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    descriptors: Vec<ComponentDescriptor>,
    index: FxHashMap<ComponentId, usize>,
    /// Field layouts the engine declared (see [`crate::fields`]).
    fields: FxHashMap<ComponentId, FieldLayout>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `name` with `layout`; the same name and layout again returns the same id.
    pub fn register(&mut self, name: &str, layout: Layout) -> Result<ComponentId, RegistryError> {
        let descriptor = ComponentDescriptor {
            id: ComponentId::of_name(name),
            name: name.to_owned(),
            layout,
        };
        self.insert(descriptor)
    }

    /// Adds a descriptor received from a peer, with the same rules as [`Registry::register`]
    /// plus a check that its id is the hash of its name.
    pub fn insert(
        &mut self,
        descriptor: ComponentDescriptor,
    ) -> Result<ComponentId, RegistryError> {
        match self.check(&descriptor)? {
            Some(id) => Ok(id),
            None => {
                let id = descriptor.id;
                let at = self.descriptors.partition_point(|d| d.id < id);
                self.descriptors.insert(at, descriptor);
                for (i, d) in self.descriptors.iter().enumerate().skip(at) {
                    self.index.insert(d.id, i);
                }
                Ok(id)
            }
        }
    }

    /// Validates a descriptor against this registry without changing it: `Ok(Some(id))`
    /// when it is registered already, `Ok(None)` when inserting it would succeed.
    pub fn check(
        &self,
        descriptor: &ComponentDescriptor,
    ) -> Result<Option<ComponentId>, RegistryError> {
        validate_descriptor(descriptor)?;
        if let Some(existing) = self.get(descriptor.id) {
            if existing.name != descriptor.name {
                return Err(RegistryError::HashCollision {
                    id: descriptor.id,
                    existing: existing.name.clone(),
                    requested: descriptor.name.clone(),
                });
            }
            if existing.layout != descriptor.layout {
                return Err(RegistryError::LayoutConflict {
                    name: descriptor.name.clone(),
                    registered: existing.layout,
                    requested: descriptor.layout,
                });
            }
            return Ok(Some(descriptor.id));
        }
        if self.descriptors.len() >= MAX_COMPONENT_TYPES {
            return Err(RegistryError::Full);
        }
        Ok(None)
    }

    /// Declares what the bytes of fixed-size component `id` mean (see
    /// [`crate::fields`]): its declared fields are then quantised on the wire. The same
    /// layout again is accepted; another one, or one of another size, is refused.
    pub fn declare_fields(
        &mut self,
        id: ComponentId,
        layout: FieldLayout,
    ) -> Result<(), RegistryError> {
        let fail = |reason: String| RegistryError::Fields { id, reason };
        let Some(descriptor) = self.get(id) else {
            return Err(fail("no such component type".into()));
        };
        match descriptor.layout {
            Layout::Fixed(size) if size == layout.size() => {}
            other => {
                return Err(fail(format!(
                    "a layout of {} bytes for a component of {other}",
                    layout.size()
                )))
            }
        }
        match self.fields.get(&id) {
            Some(existing) if *existing != layout => {
                Err(fail("another layout is declared already".into()))
            }
            _ => {
                self.fields.insert(id, layout);
                Ok(())
            }
        }
    }

    /// The field layout declared for `id`, if any.
    pub fn fields(&self, id: ComponentId) -> Option<&FieldLayout> {
        self.fields.get(&id)
    }

    /// The descriptor of `id`, if registered.
    pub fn get(&self, id: ComponentId) -> Option<&ComponentDescriptor> {
        self.index.get(&id).map(|&i| &self.descriptors[i])
    }

    /// Position of `id` in registry order, if registered.
    pub fn position(&self, id: ComponentId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The descriptor registered under `name`, if any.
    pub fn find(&self, name: &str) -> Option<&ComponentDescriptor> {
        self.get(ComponentId::of_name(name))
            .filter(|d| d.name == name)
    }

    /// All descriptors in registry order (ascending id).
    pub fn descriptors(&self) -> &[ComponentDescriptor] {
        &self.descriptors
    }

    /// Number of registered types.
    pub fn len(&self) -> usize {
        self.descriptors.len()
    }

    /// Whether no type is registered.
    pub fn is_empty(&self) -> bool {
        self.descriptors.is_empty()
    }

    /// A hash of every descriptor (id, name, layout, declared fields): equal on two peers
    /// exactly when their registries are, whatever order the types were registered in.
    pub fn hash(&self) -> u64 {
        let mut canonical = Vec::with_capacity(self.descriptors.len() * 32);
        for d in &self.descriptors {
            canonical.extend_from_slice(&d.id.0.to_le_bytes());
            let (kind, size) = match d.layout {
                Layout::Fixed(size) => (0u8, size),
                Layout::Variable { max } => (1u8, max),
            };
            canonical.push(kind);
            canonical.extend_from_slice(&size.to_le_bytes());
            canonical.extend_from_slice(&(d.name.len() as u32).to_le_bytes());
            canonical.extend_from_slice(d.name.as_bytes());
            // Declared fields change what the wire carries: part of the identity (types
            // without any hash as before).
            if let Some(fields) = self.fields.get(&d.id) {
                canonical.push(0xF1);
                canonical.extend_from_slice(&fields.hash().to_le_bytes());
            }
        }
        hash64(0x7468_6574_6172_6567, &canonical)
    }
}

fn validate_descriptor(d: &ComponentDescriptor) -> Result<(), RegistryError> {
    let invalid_name = |reason| RegistryError::InvalidName {
        name: d.name.clone(),
        reason,
    };
    if d.name.is_empty() {
        return Err(invalid_name("empty"));
    }
    if d.name.len() > MAX_NAME_BYTES {
        return Err(invalid_name("longer than 255 bytes"));
    }
    let expected = ComponentId::of_name(&d.name);
    if expected.0 == 0 {
        return Err(invalid_name("hashes to the reserved id 0"));
    }
    if d.id != expected {
        return Err(RegistryError::IdMismatch {
            id: d.id,
            name: d.name.clone(),
            expected,
        });
    }
    let invalid_layout = |reason| RegistryError::InvalidLayout {
        name: d.name.clone(),
        layout: d.layout,
        reason,
    };
    match d.layout {
        Layout::Fixed(size) if size > MAX_VALUE_BYTES => Err(invalid_layout("larger than 1 MiB")),
        Layout::Variable { max } if max > MAX_VALUE_BYTES => {
            Err(invalid_layout("larger than 1 MiB"))
        }
        Layout::Variable { max: 0 } => Err(invalid_layout("variable maximum of 0")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_deduplicates_component_registration() {
        let mut registry = Registry::new();
        let a = registry
            .register("acme.Position", Layout::Fixed(12))
            .unwrap();
        let b = registry
            .register("acme.Position", Layout::Fixed(12))
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, ComponentId::of_name("acme.Position"));
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn conflicting_layout_is_an_error() {
        let mut registry = Registry::new();
        registry
            .register("acme.Position", Layout::Fixed(12))
            .unwrap();
        let err = registry
            .register("acme.Position", Layout::Fixed(16))
            .unwrap_err();
        assert!(matches!(err, RegistryError::LayoutConflict { .. }), "{err}");
        assert!(err.to_string().contains("acme.Position"));
        assert_eq!(
            registry
                .get(ComponentId::of_name("acme.Position"))
                .unwrap()
                .layout,
            Layout::Fixed(12)
        );
    }

    #[test]
    fn hash_collision_between_names_is_an_error() {
        // "costarring" and "liquid" are a known FNV-1a-32 collision.
        assert_eq!(fnv1a_32(b"costarring"), fnv1a_32(b"liquid"));
        let mut registry = Registry::new();
        registry.register("costarring", Layout::Fixed(4)).unwrap();
        let err = registry.register("liquid", Layout::Fixed(4)).unwrap_err();
        assert!(matches!(err, RegistryError::HashCollision { .. }), "{err}");
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn invalid_names_and_layouts_are_refused() {
        let mut registry = Registry::new();
        assert!(registry.register("", Layout::Fixed(4)).is_err());
        assert!(registry
            .register(&"x".repeat(256), Layout::Fixed(4))
            .is_err());
        assert!(registry
            .register("big", Layout::Fixed(MAX_VALUE_BYTES + 1))
            .is_err());
        assert!(registry
            .register("var", Layout::Variable { max: 0 })
            .is_err());
        assert!(registry.register("tag", Layout::Fixed(0)).is_ok());
    }

    #[test]
    fn descriptor_with_wrong_id_is_refused() {
        let mut registry = Registry::new();
        let err = registry
            .insert(ComponentDescriptor {
                id: ComponentId(42),
                name: "acme.Position".into(),
                layout: Layout::Fixed(12),
            })
            .unwrap_err();
        assert!(matches!(err, RegistryError::IdMismatch { .. }));
    }

    #[test]
    fn registry_hash_ignores_registration_order_but_not_layouts() {
        let mut a = Registry::new();
        a.register("one", Layout::Fixed(4)).unwrap();
        a.register("two", Layout::Variable { max: 64 }).unwrap();
        let mut b = Registry::new();
        b.register("two", Layout::Variable { max: 64 }).unwrap();
        b.register("one", Layout::Fixed(4)).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.descriptors(), b.descriptors());
        let mut c = Registry::new();
        c.register("one", Layout::Fixed(4)).unwrap();
        c.register("two", Layout::Variable { max: 65 }).unwrap();
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn find_by_name() {
        let mut registry = Registry::new();
        let id = registry.register("acme.Color", Layout::Fixed(4)).unwrap();
        assert_eq!(registry.find("acme.Color").unwrap().id, id);
        assert!(registry.find("acme.Missing").is_none());
    }

    #[test]
    fn field_layouts_are_declared_once_must_fit_and_change_the_hash() {
        use crate::fields::{Field, FieldLayout};
        let mut registry = Registry::new();
        let transform = registry.register("t.Transform", Layout::Fixed(28)).unwrap();
        let label = registry
            .register("t.Label", Layout::Variable { max: 16 })
            .unwrap();
        let plain = registry.hash();
        let layout = |precision_mm| {
            FieldLayout::new(
                28,
                &[Field::Position {
                    offset: 0,
                    precision_mm,
                }],
            )
            .unwrap()
        };
        registry.declare_fields(transform, layout(1.0)).unwrap();
        let declared = registry.hash();
        assert_ne!(plain, declared, "the layout is part of the identity");
        registry.declare_fields(transform, layout(1.0)).unwrap();
        assert_eq!(registry.hash(), declared, "the same layout again");
        for (id, l) in [
            (transform, layout(2.0)),
            (label, layout(1.0)),
            (ComponentId(99), layout(1.0)),
            (transform, FieldLayout::new(12, &[]).unwrap()),
        ] {
            assert!(
                matches!(
                    registry.declare_fields(id, l),
                    Err(RegistryError::Fields { .. })
                ),
                "{id}"
            );
        }
        assert_eq!(registry.hash(), declared, "refusals change nothing");
        assert_eq!(registry.fields(transform), Some(&layout(1.0)));
        assert_eq!(registry.fields(label), None);
    }
}
