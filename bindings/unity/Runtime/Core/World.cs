using System;
using System.Runtime.InteropServices;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// The authoritative state of a host before it hosts (its world moves into the
    /// <see cref="Session"/>), or a registry of component types for a client's join.
    /// </summary>
    public sealed unsafe class World : IDisposable
    {
        private NativeHandle handle;

        /// <param name="localPeer">The peer this world spawns entities for; 0 for a host.</param>
        /// <param name="historyTicks">Ticks of change history kept (0: the default, 1024).</param>
        public World(ushort localPeer = 0, ulong historyTicks = 0)
        {
            Library.EnsureCompatible();
            var config = new ThetaWorldConfig
            {
                struct_size = (uint)sizeof(ThetaWorldConfig),
                local_peer = localPeer,
                history_ticks = historyTicks,
            };
            ThetaWorld world;
            Library.Check(NativeMethods.theta_world_new(&config, &world));
            handle = new NativeHandle(world.id);
        }

        ~World()
        {
            Free();
        }

        internal ThetaWorld Handle => new ThetaWorld { id = handle.Get(nameof(World)) };

        /// <summary>Registers a type whose values are exactly <paramref name="size"/> bytes.</summary>
        public ComponentType RegisterFixed(string name, int size)
        {
            if (size < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(size), "a size is not negative");
            }
            return Register(name, size, false);
        }

        /// <summary>Registers a type whose values are a <typeparamref name="T"/>.</summary>
        public ComponentType RegisterFixed<T>(string name) where T : struct
        {
            return Register(name, Marshal.SizeOf<T>(), false);
        }

        /// <summary>Registers a type whose values have 0 to <paramref name="maxSize"/> bytes.</summary>
        public ComponentType RegisterVariable(string name, int maxSize)
        {
            if (maxSize < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(maxSize), "a size is not negative");
            }
            return Register(name, maxSize, true);
        }

        private ComponentType Register(string name, int size, bool variable)
        {
            byte[] utf8 = Library.Utf8(name, nameof(name));
            ThetaWorld world = Handle;
            uint id;
            fixed (byte* p = utf8)
            {
                Library.Check(variable
                    ? NativeMethods.theta_world_register_variable(world, p, (UIntPtr)utf8.Length, (uint)size, &id)
                    : NativeMethods.theta_world_register_fixed(world, p, (UIntPtr)utf8.Length, (uint)size, &id));
            }
            return new ComponentType(id, size, variable);
        }

        /// <summary>
        /// Declares the fields of fixed-size <paramref name="component"/> (see <see cref="Field"/>;
        /// <see cref="XrPose.Fields"/> for a pose), before its first value is written: from
        /// then on its values are stored and sent quantised to them, and a write whose
        /// declared field is NaN, infinite or out of range throws ThetaException with
        /// <see cref="Status.NotQuantisable"/>, nothing written. Every peer must declare the
        /// same fields (they are part of the registry hash checked at join); the same again
        /// is a no-op. Other fields than declared before throw with
        /// <see cref="Status.RegistryConflict"/>; fields that overlap, run past the value or
        /// have bad precisions, a variable-size type, or a type holding values already,
        /// with <see cref="Status.InvalidArgument"/>.
        /// </summary>
        public void DeclareFields(ComponentType component, params Field[] fields)
        {
            if (fields == null)
            {
                throw new ArgumentNullException(nameof(fields));
            }
            DeclareFields(component, new ReadOnlySpan<Field>(fields));
        }

        /// <summary>As <see cref="DeclareFields(ComponentType, Field[])"/>, from a span.</summary>
        public void DeclareFields(ComponentType component, ReadOnlySpan<Field> fields)
        {
            ThetaWorld world = Handle;
            fixed (Field* p = &MemoryMarshal.GetReference(fields))
            {
                // Field is laid out as ThetaField (one member of that type).
                Library.Check(NativeMethods.theta_world_declare_fields(world, component.Id, (ThetaField*)p, (UIntPtr)fields.Length));
            }
        }

        /// <summary>Creates an entity in this world's peer range.</summary>
        public Entity Spawn()
        {
            ulong entity;
            Library.Check(NativeMethods.theta_world_spawn(Handle, &entity));
            return new Entity(entity);
        }

        /// <summary>Destroys an entity and its components.</summary>
        public void Despawn(Entity entity)
        {
            Library.Check(NativeMethods.theta_world_despawn(Handle, entity.Id));
        }

        /// <summary>Writes a value (copied).</summary>
        public Change Set(Entity entity, ComponentType component, ReadOnlySpan<byte> value)
        {
            component.CheckValue(value.Length, nameof(value));
            ThetaWorld world = Handle;
            byte change;
            fixed (byte* p = &MemoryMarshal.GetReference(value))
            {
                Library.Check(NativeMethods.theta_world_set(world, entity.Id, component.Id, p, (UIntPtr)value.Length, &change));
            }
            return (Change)change;
        }

        /// <summary>Writes a value (copied) from an array.</summary>
        public Change Set(Entity entity, ComponentType component, byte[] value)
        {
            if (value == null)
            {
                throw new ArgumentNullException(nameof(value));
            }
            return Set(entity, component, new ReadOnlySpan<byte>(value));
        }

        /// <summary>Writes an unmanaged value as its bytes.</summary>
        public Change Set<T>(Entity entity, ComponentType component, T value)
#if THETA_NO_UNMANAGED_CONSTRAINT
            where T : struct
#else
            where T : unmanaged
#endif
        {
            return Set(entity, component, Bytes.Of(ref value));
        }

        /// <summary>Copies a value into <paramref name="destination"/>; returns its length.</summary>
        public int Get(Entity entity, ComponentType component, Span<byte> destination)
        {
            ThetaWorld world = Handle;
            UIntPtr length;
            fixed (byte* p = &MemoryMarshal.GetReference(destination))
            {
                Library.Check(NativeMethods.theta_world_get(world, entity.Id, component.Id, p, (UIntPtr)destination.Length, &length));
            }
            return (int)length;
        }

        public bool IsAlive(Entity entity)
        {
            byte alive;
            Library.Check(NativeMethods.theta_world_is_alive(Handle, entity.Id, &alive));
            return alive != 0;
        }

        /// <summary>Closes the current tick; returns the new one.</summary>
        public ulong Advance()
        {
            ulong tick;
            Library.Check(NativeMethods.theta_world_advance(Handle, &tick));
            return tick;
        }

        /// <summary>Hash of every live entity and value: equal on peers with equal state.</summary>
        public ulong StateHash
        {
            get
            {
                ulong hash;
                Library.Check(NativeMethods.theta_world_state_hash(Handle, &hash));
                return hash;
            }
        }

        /// <summary>A snapshot of the world in chunks of at most <paramref name="maxChunkBytes"/> (0: 16 KiB).</summary>
        public Snapshot TakeSnapshot(int maxChunkBytes = 0)
        {
            if (maxChunkBytes < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(maxChunkBytes));
            }
            ThetaSnapshot snapshot;
            Library.Check(NativeMethods.theta_world_snapshot(Handle, (UIntPtr)maxChunkBytes, &snapshot));
            return new Snapshot(snapshot);
        }

        /// <summary>Hands the handle over to a call that consumed the world.</summary>
        internal void MovedInto(string what)
        {
            handle.Take("this World moved into " + what + ": use it through that instead");
            GC.SuppressFinalize(this);
        }

        public void Dispose()
        {
            Free();
            GC.SuppressFinalize(this);
        }

        private void Free()
        {
            ulong id = handle.Take("this World was disposed");
            if (id != 0)
            {
                NativeMethods.theta_world_free(new ThetaWorld { id = id });
            }
        }
    }

    /// <summary>Byte views of unmanaged values.</summary>
    internal static class Bytes
    {
        /// <summary>
        /// The bytes of <paramref name="value"/>. Under a compiler without the `unmanaged`
        /// constraint (Mono's mcs) a type holding references is refused here, at run time,
        /// with an ArgumentException.
        /// </summary>
        internal static ReadOnlySpan<byte> Of<T>(ref T value) where T : struct
        {
            return MemoryMarshal.AsBytes(MemoryMarshal.CreateReadOnlySpan(ref value, 1));
        }
    }
}
