using System;
using System.Runtime.InteropServices;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// A local copy of a peer's world fed by hand (snapshot chunks and delta frames carried
    /// by the engine's own transport); sessions keep theirs inside.
    /// </summary>
    public sealed unsafe class Replica : IDisposable
    {
        private NativeHandle handle;

        public Replica()
        {
            Library.EnsureCompatible();
            ThetaReplica replica;
            Library.Check(NativeMethods.theta_replica_new(&replica));
            handle = new NativeHandle(replica.id);
        }

        ~Replica()
        {
            Free();
        }

        private ThetaReplica Handle => new ThetaReplica { id = handle.Get(nameof(Replica)) };

        /// <summary>
        /// Registers one of the engine's own types (values of exactly <paramref name="size"/>
        /// bytes), so that descriptors from the peer are checked against it and its fields
        /// can be declared before any value arrives.
        /// </summary>
        public ComponentType RegisterFixed(string name, int size)
        {
            if (size < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(size), "a size is not negative");
            }
            byte[] utf8 = Library.Utf8(name, nameof(name));
            ThetaReplica replica = Handle;
            uint id;
            fixed (byte* p = utf8)
            {
                Library.Check(NativeMethods.theta_replica_register_fixed(replica, p, (UIntPtr)utf8.Length, (uint)size, &id));
            }
            return new ComponentType(id, size, false);
        }

        /// <summary>Registers one of the engine's own types whose values are a <typeparamref name="T"/>.</summary>
        public ComponentType RegisterFixed<T>(string name) where T : struct
        {
            return RegisterFixed(name, Marshal.SizeOf<T>());
        }

        /// <summary>
        /// Declares the fields of one of the engine's own fixed-size types, as
        /// <see cref="World.DeclareFields(ComponentType, Field[])"/> does, before any value
        /// of it arrives (so the replica matches a sender that declared the same).
        /// </summary>
        public void DeclareFields(ComponentType component, params Field[] fields)
        {
            if (fields == null)
            {
                throw new ArgumentNullException(nameof(fields));
            }
            ThetaReplica replica = Handle;
            fixed (Field* p = fields)
            {
                // Field is laid out as ThetaField (one member of that type).
                Library.Check(NativeMethods.theta_replica_declare_fields(replica, component.Id, (ThetaField*)p, (UIntPtr)fields.Length));
            }
        }

        /// <summary>Applies a snapshot chunk or a delta frame from the peer (bytes are verified).</summary>
        public void Apply(ReadOnlySpan<byte> message)
        {
            ThetaReplica replica = Handle;
            byte applied;
            fixed (byte* p = &MemoryMarshal.GetReference(message))
            {
                Library.Check(NativeMethods.theta_replica_apply(replica, p, (UIntPtr)message.Length, &applied));
            }
        }

        public int Get(Entity entity, ComponentType component, Span<byte> destination)
        {
            ThetaReplica replica = Handle;
            UIntPtr length;
            fixed (byte* p = &MemoryMarshal.GetReference(destination))
            {
                Library.Check(NativeMethods.theta_replica_get(replica, entity.Id, component.Id, p, (UIntPtr)destination.Length, &length));
            }
            return (int)length;
        }

        public bool IsAlive(Entity entity)
        {
            byte alive;
            Library.Check(NativeMethods.theta_replica_is_alive(Handle, entity.Id, &alive));
            return alive != 0;
        }

        public ulong StateHash
        {
            get
            {
                ulong hash;
                Library.Check(NativeMethods.theta_replica_state_hash(Handle, &hash));
                return hash;
            }
        }

        public void Dispose()
        {
            Free();
            GC.SuppressFinalize(this);
        }

        private void Free()
        {
            ulong id = handle.Take("this Replica was disposed");
            if (id != 0)
            {
                NativeMethods.theta_replica_free(new ThetaReplica { id = id });
            }
        }
    }
}
