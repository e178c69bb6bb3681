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
