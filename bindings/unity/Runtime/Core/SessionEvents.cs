using System;
using System.Runtime.InteropServices;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// Room for the events of one poll, in native memory allocated once: polling allocates
    /// nothing. The events' data stays valid until the next poll of the same session.
    /// </summary>
    public sealed unsafe class SessionEventBuffer : IDisposable
    {
        private ThetaSessionEvent* events;

        public SessionEventBuffer(int capacity = 256)
        {
            if (capacity <= 0 || capacity > 1 << 20)
            {
                throw new ArgumentOutOfRangeException(nameof(capacity), "1 to 1048576 events");
            }
            Capacity = capacity;
            events = (ThetaSessionEvent*)Marshal.AllocHGlobal(capacity * sizeof(ThetaSessionEvent));
        }

        ~SessionEventBuffer()
        {
            Free();
        }

        public int Capacity { get; }

        /// <summary>Events of the last poll.</summary>
        public int Count { get; internal set; }

        internal ThetaSessionEvent* Pointer
        {
            get
            {
                if (events == null)
                {
                    throw new ObjectDisposedException(nameof(SessionEventBuffer));
                }
                return events;
            }
        }

        /// <summary>Event <paramref name="index"/> of the last poll.</summary>
        public SessionEvent At(int index)
        {
            if ((uint)index >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(index), "0 to Count - 1");
            }
            return new SessionEvent(Pointer + index);
        }

        public void Dispose()
        {
            Free();
            GC.SuppressFinalize(this);
        }

        private void Free()
        {
            if (events != null)
            {
                Marshal.FreeHGlobal((IntPtr)events);
                events = null;
                Count = 0;
            }
        }
    }

    /// <summary>
    /// One session event, read in place: its <see cref="Data"/> borrows the library's bytes
    /// until the next poll (a ref struct, so it cannot be kept past that by mistake).
    /// </summary>
    public readonly unsafe ref struct SessionEvent
    {
        private readonly ThetaSessionEvent* e;

        internal SessionEvent(ThetaSessionEvent* e)
        {
            this.e = e;
        }

        public SessionEventKind Kind => (SessionEventKind)e->kind;

        /// <summary>The entity (replica, ownership and WriteRejected events).</summary>
        public Entity Entity => new Entity(e->entity);

        /// <summary>The component id (inserts, updates, removes, WriteRejected; 0 for a whole entity's ownership).</summary>
        public uint Component => e->component;

        /// <summary>The peer: see <see cref="SessionEventKind"/>.</summary>
        public ushort Peer => e->peer;

        /// <summary>Host tick of a replica event.</summary>
        public ulong Tick => e->tick;

        /// <summary>Why a Disconnected event happened.</summary>
        public DisconnectCause Cause => (DisconnectCause)e->cause;

        /// <summary>The application's channel of a message event.</summary>
        public uint Channel => e->channel;

        /// <summary>Whether a Message or MessageRequested event's message is reliable-ordered.</summary>
        public bool Reliable => (e->cause & NativeMethods.THETA_MESSAGE_RELIABLE) != 0;

        /// <summary>Why an OwnershipDenied event happened.</summary>
        public OwnershipRefusal Refusal => (OwnershipRefusal)e->cause;

        /// <summary>The id to answer an OwnershipRequested event (<see cref="Session.DecideOwnership"/>) or a MessageRequested event with.</summary>
        public ulong Request => e->request;

        /// <summary>The value (inserts, updates) or the reason's UTF-8 text.</summary>
        public ReadOnlySpan<byte> Data => new ReadOnlySpan<byte>(e->data, (int)e->data_len);

        /// <summary>The data as text (allocates: for reasons, not values).</summary>
        public string Text => e->data_len == UIntPtr.Zero ? string.Empty : System.Text.Encoding.UTF8.GetString(e->data, (int)e->data_len);

        /// <summary>The value as a <typeparamref name="T"/>; ArgumentException when the size differs.</summary>
        public T Value<T>() where T : struct
        {
            ReadOnlySpan<byte> data = Data;
            ReadOnlySpan<T> values = MemoryMarshal.Cast<byte, T>(data);
            if (values.Length != 1 || MemoryMarshal.AsBytes(values).Length != data.Length)
            {
                throw new ArgumentException("the event holds " + data.Length + " bytes, not one " + typeof(T).Name);
            }
            return values[0];
        }
    }
}
