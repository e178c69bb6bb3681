//! World calls: the host side's authoritative state.

use std::sync::Mutex;

use super::boundary::{boundary, FfiError, FfiResult};
use super::handles::HandleTable;
use super::session_config::growable_in;
use super::{bytes_in, check_out, name_in, write_optional, write_out, ThetaStatus};
use crate::registry::{ComponentDescriptor, ComponentId, Layout, RegistryError};
use crate::world::{Change, EntityId, World, WorldConfig, WorldError};

/// A world handle. `id` 0 is the null handle.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThetaWorld {
    /// Opaque, validated by the library.
    pub id: u64,
}

/// Settings of a new world; pass NULL to `theta_world_new` for the defaults. Set
/// `struct_size` to `sizeof(ThetaWorldConfig)`; it grows as `ThetaSessionConfig` does
/// (fields a caller leaves out keep their defaults; fields it sets that this library does
/// not know are refused).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThetaWorldConfig {
    /// Bytes of this struct as the caller compiled it: `sizeof(ThetaWorldConfig)`.
    pub struct_size: u32,
    /// The peer this world spawns entities for (high 16 bits of their ids); 0 for a host.
    pub local_peer: u16,
    /// Reserved; must be 0.
    pub reserved: u16,
    /// Ticks of change history kept for deltas (default 1024); 0 means the default.
    pub history_ticks: u64,
}

impl Default for ThetaWorldConfig {
    /// The default configuration: every field 0 but the size.
    fn default() -> Self {
        ThetaWorldConfig {
            struct_size: size_of::<ThetaWorldConfig>() as u32,
            local_peer: 0,
            reserved: 0,
            history_ticks: 0,
        }
    }
}

// No implicit padding, 8-byte aligned: the same layout from C, C++ and C#.
const _: () = {
    assert!(size_of::<ThetaWorldConfig>() == 16);
    assert!(core::mem::offset_of!(ThetaWorldConfig, history_ticks) == 8);
};

/// A component type.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThetaComponentInfo {
    /// FNV-1a-32 of the name.
    pub id: u32,
    /// Fixed size in bytes, or the maximum when `variable` is 1.
    pub size: u32,
    /// 1 when values may have any size up to `size`, 0 when exactly `size`.
    pub variable: u8,
    /// Padding; 0.
    pub reserved: [u8; 7],
    /// The name, UTF-8, not NUL-terminated; valid until the world or replica is freed.
    pub name: *const u8,
    /// Length of `name` in bytes.
    pub name_len: usize,
}

/// Counts and memory of a world.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaWorldStats {
    /// Live entities.
    pub entities: u64,
    /// Stored (entity, component) values.
    pub components: u64,
    /// Registered component types.
    pub component_types: u64,
    /// Change records kept for deltas.
    pub journal_entries: u64,
    /// Approximate heap bytes.
    pub heap_bytes: u64,
    /// The current tick.
    pub tick: u64,
}

/// What a batch write did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ThetaBatchResult {
    /// Values the entities did not hold before.
    pub inserted: u64,
    /// Values whose bytes changed.
    pub updated: u64,
    /// Values written with identical bytes (not a change).
    pub unchanged: u64,
}

/// What `theta_world_set` did, written to its `out_change` as a `uint8_t`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaChange {
    /// Identical bytes: not a change.
    Unchanged = 0,
    /// The entity gained the component.
    Inserted = 1,
    /// The value's bytes changed.
    Updated = 2,
}

pub(crate) static WORLDS: HandleTable<Mutex<World>> = HandleTable::new(1);
const KIND: &str = "world";

impl From<RegistryError> for FfiError {
    fn from(error: RegistryError) -> Self {
        let status = match error {
            RegistryError::LayoutConflict { .. } | RegistryError::HashCollision { .. } => {
                ThetaStatus::RegistryConflict
            }
            _ => ThetaStatus::InvalidArgument,
        };
        FfiError::new(status, error.to_string())
    }
}

impl From<WorldError> for FfiError {
    fn from(error: WorldError) -> Self {
        let status = match &error {
            WorldError::Registry(registry) => return registry.clone().into(),
            WorldError::UnknownComponent(_) => ThetaStatus::UnknownComponent,
            WorldError::DeadEntity(_) => ThetaStatus::DeadEntity,
            WorldError::WrongSize { .. } | WorldError::StrideTooSmall { .. } => {
                ThetaStatus::WrongSize
            }
            WorldError::BatchNeedsFixedLayout { .. } | WorldError::BatchTooShort { .. } => {
                ThetaStatus::InvalidArgument
            }
            WorldError::NotQuantisable { .. } => ThetaStatus::NotQuantisable,
            WorldError::IdsExhausted(_) => ThetaStatus::OutOfIds,
            WorldError::NotOwner { .. } => ThetaStatus::NotOwner,
        };
        FfiError::new(status, error.to_string())
    }
}

pub(crate) fn component_info(descriptor: &ComponentDescriptor) -> ThetaComponentInfo {
    let (size, variable) = match descriptor.layout {
        Layout::Fixed(size) => (size, 0),
        Layout::Variable { max } => (max, 1),
    };
    ThetaComponentInfo {
        id: descriptor.id.0,
        size,
        variable,
        reserved: [0; 7],
        name: descriptor.name.as_ptr(),
        name_len: descriptor.name.len(),
    }
}

/// Creates a world. `config` may be NULL for the defaults; a bad `struct_size` or a
/// non-zero reserved field is `THETA_STATUS_INVALID_ARGUMENT`. Free it with
/// `theta_world_free`.
///
/// # Safety
/// `config` must be NULL or point to a `ThetaWorldConfig` of its `struct_size` bytes;
/// `out_world` to a writable `ThetaWorld`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_new(
    config: *const ThetaWorldConfig,
    out_world: *mut ThetaWorld,
) -> ThetaStatus {
    boundary("theta_world_new", || {
        check_out(out_world, "out_world")?;
        let mut settings = WorldConfig::default();
        // SAFETY: NULL or a valid config, per the contract.
        if let Some(config) = unsafe { growable_in(config, "ThetaWorldConfig", 16) }? {
            if config.reserved != 0 {
                return Err(FfiError::new(
                    ThetaStatus::InvalidArgument,
                    "ThetaWorldConfig.reserved must be 0",
                ));
            }
            settings.local_peer = config.local_peer;
            if config.history_ticks != 0 {
                settings.history_ticks = config.history_ticks;
            }
        }
        let id = WORLDS.insert(Mutex::new(World::new(settings)));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_world, ThetaWorld { id }) };
        Ok(())
    })
}

/// Frees a world. The null handle is a no-op; a handle already freed gives
/// `THETA_STATUS_INVALID_HANDLE`. Snapshots and deltas taken from it stay valid.
#[no_mangle]
pub extern "C" fn theta_world_free(world: ThetaWorld) -> ThetaStatus {
    boundary("theta_world_free", || WORLDS.free(world.id, KIND))
}

/// Runs `f` on a world.
pub(super) fn with_world<R>(
    world: ThetaWorld,
    f: impl FnOnce(&mut World) -> FfiResult<R>,
) -> FfiResult<R> {
    WORLDS.with(world.id, KIND, f)
}

/// Registers a component type whose values are exactly `size` bytes (0 for a tag) and
/// writes its id (FNV-1a-32 of the name) to `out_component`. The same name and size again
/// give the same id; another layout, or a name whose id collides with another name's, is
/// `THETA_STATUS_REGISTRY_CONFLICT`.
///
/// # Safety
/// `name` must point to `name_len` bytes of UTF-8; `out_component` to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_register_fixed(
    world: ThetaWorld,
    name: *const u8,
    name_len: usize,
    size: u32,
    out_component: *mut u32,
) -> ThetaStatus {
    boundary("theta_world_register_fixed", || {
        // SAFETY: per the contract.
        unsafe { register(world, name, name_len, Layout::Fixed(size), out_component) }
    })
}

/// Registers a component type whose values have 0 to `max_size` bytes; as
/// `theta_world_register_fixed` otherwise.
///
/// # Safety
/// As `theta_world_register_fixed`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_register_variable(
    world: ThetaWorld,
    name: *const u8,
    name_len: usize,
    max_size: u32,
    out_component: *mut u32,
) -> ThetaStatus {
    boundary("theta_world_register_variable", || {
        // SAFETY: per the contract.
        unsafe {
            register(
                world,
                name,
                name_len,
                Layout::Variable { max: max_size },
                out_component,
            )
        }
    })
}

/// # Safety
/// As `theta_world_register_fixed`.
unsafe fn register(
    world: ThetaWorld,
    name: *const u8,
    name_len: usize,
    layout: Layout,
    out: *mut u32,
) -> FfiResult {
    check_out(out, "out_component")?;
    // SAFETY: per the contract.
    let name = unsafe { name_in(name, name_len) }?;
    let id = with_world(world, |w| Ok(w.register(name, layout)?))?;
    // SAFETY: checked non-NULL.
    unsafe { write_out(out, id.0) };
    Ok(())
}

/// Looks up a registered component type by name; `THETA_STATUS_NOT_FOUND` when absent.
/// Does not modify the world.
///
/// # Safety
/// `name` must point to `name_len` bytes; `out_component` to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_component_id(
    world: ThetaWorld,
    name: *const u8,
    name_len: usize,
    out_component: *mut u32,
) -> ThetaStatus {
    boundary("theta_world_component_id", || {
        check_out(out_component, "out_component")?;
        // SAFETY: per the contract.
        let name = unsafe { name_in(name, name_len) }?;
        let id = with_world(world, |w| {
            w.registry().find(name).map(|d| d.id.0).ok_or_else(|| {
                FfiError::new(
                    ThetaStatus::NotFound,
                    format!("no component named {name:?}"),
                )
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_component, id) };
        Ok(())
    })
}

/// Describes a registered component type; the name stays valid until the world is freed.
/// `THETA_STATUS_UNKNOWN_COMPONENT` when not registered. Does not modify the world.
///
/// # Safety
/// `out_info` must point to a writable `ThetaComponentInfo`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_component_info(
    world: ThetaWorld,
    component: u32,
    out_info: *mut ThetaComponentInfo,
) -> ThetaStatus {
    boundary("theta_world_component_info", || {
        check_out(out_info, "out_info")?;
        let info = with_world(world, |w| {
            w.registry()
                .get(ComponentId(component))
                .map(component_info)
                .ok_or_else(|| WorldError::UnknownComponent(ComponentId(component)).into())
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_info, info) };
        Ok(())
    })
}

/// Creates an entity in this world's peer range and writes its id (never 0, never reused).
///
/// # Safety
/// `out_entity` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_spawn(world: ThetaWorld, out_entity: *mut u64) -> ThetaStatus {
    boundary("theta_world_spawn", || {
        check_out(out_entity, "out_entity")?;
        let entity = with_world(world, |w| Ok(w.spawn()?))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_entity, entity.0) };
        Ok(())
    })
}

/// Destroys an entity and all its components. `THETA_STATUS_DEAD_ENTITY` if not alive.
#[no_mangle]
pub extern "C" fn theta_world_despawn(world: ThetaWorld, entity: u64) -> ThetaStatus {
    boundary("theta_world_despawn", || {
        with_world(world, |w| Ok(w.despawn(EntityId(entity))?))
    })
}

/// Writes 1 to `out_alive` if the entity is alive, else 0. Does not modify the world.
///
/// # Safety
/// `out_alive` must point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_is_alive(
    world: ThetaWorld,
    entity: u64,
    out_alive: *mut u8,
) -> ThetaStatus {
    boundary("theta_world_is_alive", || {
        check_out(out_alive, "out_alive")?;
        let alive = with_world(world, |w| Ok(w.is_alive(EntityId(entity))))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_alive, u8::from(alive)) };
        Ok(())
    })
}

/// Writes a component value (`len` bytes, copied). Identical bytes are not a change. When
/// `out_change` is not NULL it receives a `ThetaChange`. A component with declared fields
/// (`theta_world_declare_fields`) stores the value quantised to them. Errors: unknown
/// component, wrong size for the layout, dead entity, a declared field that cannot be
/// quantised (`THETA_STATUS_NOT_QUANTISABLE`); nothing changes then.
///
/// # Safety
/// `data` must point to `len` readable bytes (may be NULL when `len` is 0); `out_change`
/// must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_set(
    world: ThetaWorld,
    entity: u64,
    component: u32,
    data: *const u8,
    len: usize,
    out_change: *mut u8,
) -> ThetaStatus {
    boundary("theta_world_set", || {
        // SAFETY: per the contract.
        let value = unsafe { bytes_in(data, len, "data") }?;
        let change = with_world(world, |w| {
            Ok(w.set(EntityId(entity), ComponentId(component), value)?)
        })?;
        let change = match change {
            Change::Unchanged => ThetaChange::Unchanged,
            Change::Inserted => ThetaChange::Inserted,
            Change::Updated => ThetaChange::Updated,
        };
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_change, change as u8) };
        Ok(())
    })
}

/// Writes `count` values of a fixed-size component in one call: value `i`, for
/// `entities[i]`, is the component's size in bytes at `values + i * stride` (so an array
/// of engine structs can be passed with the component at some offset). All or nothing:
/// every entity and size is checked before anything is written, and one value that does
/// not quantise to the declared fields (`THETA_STATUS_NOT_QUANTISABLE`) writes none.
/// `out_result` may be NULL.
///
/// # Safety
/// `entities` must point to `count` `uint64_t`; `values` to at least
/// `(count - 1) * stride + size` readable bytes; both may be NULL when `count` is 0.
/// `out_result` must be NULL or point to a writable `ThetaBatchResult`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_set_batch(
    world: ThetaWorld,
    component: u32,
    entities: *const u64,
    values: *const u8,
    stride: usize,
    count: usize,
    out_result: *mut ThetaBatchResult,
) -> ThetaStatus {
    boundary("theta_world_set_batch", || {
        if count > 0 && entities.is_null() {
            return Err(FfiError::null("entities"));
        }
        let outcome = with_world(world, |w| {
            let component = ComponentId(component);
            let layout = w
                .registry()
                .get(component)
                .map(|d| d.layout)
                .ok_or(WorldError::UnknownComponent(component))?;
            let size = layout.max_bytes() as usize;
            let needed = match count {
                0 => 0,
                n => (n - 1)
                    .checked_mul(stride)
                    .and_then(|b| b.checked_add(size))
                    .ok_or_else(|| {
                        FfiError::new(ThetaStatus::InvalidArgument, "count * stride overflows")
                    })?,
            };
            let ids: &[u64] = if count == 0 {
                &[]
            } else {
                // SAFETY: the caller gives `count` entity ids (checked non-NULL above).
                unsafe { std::slice::from_raw_parts(entities, count) }
            };
            let ids: Vec<EntityId> = ids.iter().map(|&e| EntityId(e)).collect();
            // SAFETY: the caller gives `needed` readable bytes at `values`.
            let values = unsafe { bytes_in(values, needed, "values") }?;
            Ok(w.set_batch(component, &ids, values, stride)?)
        })?;
        let result = ThetaBatchResult {
            inserted: outcome.inserted as u64,
            updated: outcome.updated as u64,
            unchanged: outcome.unchanged as u64,
        };
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_result, result) };
        Ok(())
    })
}

/// Removes a component from a live entity; `out_removed` (may be NULL) receives 1 if the
/// entity held it, else 0.
///
/// # Safety
/// `out_removed` must be NULL or point to a writable `uint8_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_remove(
    world: ThetaWorld,
    entity: u64,
    component: u32,
    out_removed: *mut u8,
) -> ThetaStatus {
    boundary("theta_world_remove", || {
        let removed = with_world(world, |w| {
            Ok(w.remove(EntityId(entity), ComponentId(component))?)
        })?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_removed, u8::from(removed)) };
        Ok(())
    })
}

/// Copies a component value into `buf` and writes its length to `out_len`. When `capacity`
/// is too small, returns `THETA_STATUS_BUFFER_TOO_SMALL` with the needed length in
/// `out_len` (the one output written on that status). `THETA_STATUS_NOT_FOUND` when the
/// entity does not hold the component. Does not modify the world.
///
/// # Safety
/// `buf` must point to `capacity` writable bytes (NULL when `capacity` is 0); `out_len` to
/// a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_get(
    world: ThetaWorld,
    entity: u64,
    component: u32,
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
) -> ThetaStatus {
    boundary("theta_world_get", || {
        // SAFETY: per the contract.
        unsafe {
            copy_value(buf, capacity, out_len, || {
                with_world(world, |w| value_of(w, entity, component))
            })
        }
    })
}

pub(crate) fn value_of(world: &World, entity: u64, component: u32) -> FfiResult<Vec<u8>> {
    let (entity, component) = (EntityId(entity), ComponentId(component));
    if world.registry().get(component).is_none() {
        return Err(WorldError::UnknownComponent(component).into());
    }
    if !world.is_alive(entity) {
        return Err(WorldError::DeadEntity(entity).into());
    }
    world
        .get(entity, component)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            FfiError::new(
                ThetaStatus::NotFound,
                format!("entity {entity} has no component {component}"),
            )
        })
}

/// Copies a value fetched by `fetch` out to a caller buffer.
///
/// # Safety
/// As `theta_world_get`.
pub(crate) unsafe fn copy_value(
    buf: *mut u8,
    capacity: usize,
    out_len: *mut usize,
    fetch: impl FnOnce() -> FfiResult<Vec<u8>>,
) -> FfiResult {
    check_out(out_len, "out_len")?;
    if buf.is_null() && capacity > 0 {
        return Err(FfiError::null("buf"));
    }
    let value = fetch()?;
    // SAFETY: checked non-NULL.
    unsafe { write_out(out_len, value.len()) };
    if value.len() > capacity {
        return Err(FfiError::new(
            ThetaStatus::BufferTooSmall,
            format!("value has {} bytes, buffer {capacity}", value.len()),
        ));
    }
    if !value.is_empty() {
        // SAFETY: `buf` has `capacity >= value.len()` writable bytes (non-NULL since
        // capacity > 0).
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), buf, value.len()) };
    }
    Ok(())
}

/// Closes the current tick and writes the new one to `out_tick` (may be NULL).
///
/// # Safety
/// `out_tick` must be NULL or point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_advance(world: ThetaWorld, out_tick: *mut u64) -> ThetaStatus {
    boundary("theta_world_advance", || {
        let tick = with_world(world, |w| Ok(w.advance()))?;
        // SAFETY: NULL or writable per the contract.
        unsafe { write_optional(out_tick, tick) };
        Ok(())
    })
}

/// Writes the current tick. Does not modify the world.
///
/// # Safety
/// `out_tick` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_tick(world: ThetaWorld, out_tick: *mut u64) -> ThetaStatus {
    boundary("theta_world_tick", || {
        check_out(out_tick, "out_tick")?;
        let tick = with_world(world, |w| Ok(w.tick()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_tick, tick) };
        Ok(())
    })
}

/// Writes a hash of every live entity and value: equal on two peers holding the same state.
/// Does not modify the world.
///
/// # Safety
/// `out_hash` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_state_hash(
    world: ThetaWorld,
    out_hash: *mut u64,
) -> ThetaStatus {
    boundary("theta_world_state_hash", || {
        check_out(out_hash, "out_hash")?;
        let hash = with_world(world, |w| Ok(w.state_hash()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_hash, hash) };
        Ok(())
    })
}

/// Writes counts and memory use. Does not modify the world.
///
/// # Safety
/// `out_stats` must point to a writable `ThetaWorldStats`.
#[no_mangle]
pub unsafe extern "C" fn theta_world_stats(
    world: ThetaWorld,
    out_stats: *mut ThetaWorldStats,
) -> ThetaStatus {
    boundary("theta_world_stats", || {
        check_out(out_stats, "out_stats")?;
        let stats = with_world(world, |w| {
            let s = w.stats();
            Ok(ThetaWorldStats {
                entities: s.entities as u64,
                components: s.components as u64,
                component_types: s.component_types as u64,
                journal_entries: s.journal_entries as u64,
                heap_bytes: s.heap_bytes as u64,
                tick: w.tick(),
            })
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_stats, stats) };
        Ok(())
    })
}
