//! Declared fields on a world (see [`crate::fields`]): declaring them, and quantising
//! every value written to a component that has them.

use super::{World, WorldError};
use crate::fields::{Field, FieldLayout};
use crate::registry::{ComponentId, Layout, RegistryError};

impl World {
    /// Declares the fields of fixed-size `component` (see [`crate::fields`]): from now on
    /// every value written is quantised to them (lossy within the declared precisions;
    /// what no field names stays bit-exact), and peers code them compactly. Declare before
    /// the first value is written (and identically on every peer: the layout is part of
    /// the registry hash); declaring the same fields again is a no-op.
    pub fn declare_fields(
        &mut self,
        component: ComponentId,
        fields: &[Field],
    ) -> Result<(), WorldError> {
        let at = self.column_index(component)?;
        let fail = |reason: String| RegistryError::Fields {
            id: component,
            reason,
        };
        let size = match self.registry.descriptors()[at].layout {
            Layout::Fixed(size) => size,
            other => return Err(fail(format!("fields need a fixed size, not {other}")).into()),
        };
        let layout = FieldLayout::new(size, fields).map_err(|e| fail(e.to_string()))?;
        self.declare_layout(component, layout)
    }

    /// [`World::declare_fields`] with a layout built already (another registry's).
    pub(crate) fn declare_layout(
        &mut self,
        component: ComponentId,
        layout: FieldLayout,
    ) -> Result<(), WorldError> {
        let at = self.column_index(component)?;
        if self.registry.fields(component) == Some(&layout) {
            return Ok(());
        }
        if self.columns[at].len() > 0 {
            return Err(RegistryError::Fields {
                id: component,
                reason: "declare fields before the first value is written".into(),
            }
            .into());
        }
        self.registry.declare_fields(component, layout)?;
        Ok(())
    }

    /// Quantises `values` (whole values of column `at`, concatenated) to the column's
    /// declared fields, if any; on error nothing is promised of `values`.
    pub(super) fn quantise(&mut self, at: usize, values: &mut [u8]) -> Result<(), WorldError> {
        let descriptor = &self.registry.descriptors()[at];
        let Some(layout) = self.registry.fields(descriptor.id) else {
            return Ok(());
        };
        for value in values.chunks_exact_mut(layout.size() as usize) {
            layout
                .quantise(value, &mut self.scratch)
                .map_err(|source| WorldError::NotQuantisable {
                    name: descriptor.name.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}
