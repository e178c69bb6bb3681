using System;
using System.Threading;

namespace Theta
{
    /// <summary>
    /// The handle id of a native object, released once: by Dispose, by the finalizer when
    /// Dispose was forgotten, or when the object moves into another (a world into a
    /// session). Every use after that throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    internal struct NativeHandle
    {
        private long id;
        private string gone;

        internal NativeHandle(ulong id)
        {
            this.id = (long)id;
            gone = null;
        }

        /// <summary>The live id, or an ObjectDisposedException naming <paramref name="owner"/>.</summary>
        internal ulong Get(string owner)
        {
            long value = Interlocked.Read(ref id);
            if (value == 0)
            {
                throw new ObjectDisposedException(owner, gone ?? ("this " + owner + " was disposed"));
            }
            return (ulong)value;
        }

        internal bool IsLive => Interlocked.Read(ref id) != 0;

        /// <summary>Takes the id out, once (0 when already taken), recording why.</summary>
        internal ulong Take(string why)
        {
            long value = Interlocked.Exchange(ref id, 0);
            if (value != 0)
            {
                gone = why;
            }
            return (ulong)value;
        }
    }
}
