using System;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// A world's state for a late joiner, in chunks any order of which a
    /// <see cref="Replica"/> applies. The chunks' bytes live as long as the snapshot.
    /// </summary>
    public sealed unsafe class Snapshot : IDisposable
    {
        private NativeHandle handle;

        internal Snapshot(ThetaSnapshot snapshot)
        {
            handle = new NativeHandle(snapshot.id);
        }

        ~Snapshot()
        {
            Free();
        }

        private ThetaSnapshot Handle => new ThetaSnapshot { id = handle.Get(nameof(Snapshot)) };

        public int ChunkCount
        {
            get
            {
                UIntPtr count;
                Library.Check(NativeMethods.theta_snapshot_chunk_count(Handle, &count));
                return (int)count;
            }
        }

        public ulong Tick
        {
            get
            {
                ulong tick;
                Library.Check(NativeMethods.theta_snapshot_tick(Handle, &tick));
                return tick;
            }
        }

        /// <summary>Chunk <paramref name="index"/>; valid until the snapshot is disposed.</summary>
        public ReadOnlySpan<byte> Chunk(int index)
        {
            if (index < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(index));
            }
            byte* bytes;
            UIntPtr length;
            Library.Check(NativeMethods.theta_snapshot_chunk(Handle, (UIntPtr)index, &bytes, &length));
            return new ReadOnlySpan<byte>(bytes, (int)length);
        }

        public void Dispose()
        {
            Free();
            GC.SuppressFinalize(this);
        }

        private void Free()
        {
            ulong id = handle.Take("this Snapshot was disposed");
            if (id != 0)
            {
                NativeMethods.theta_snapshot_free(new ThetaSnapshot { id = id });
            }
        }
    }
}
