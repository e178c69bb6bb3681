using System;
using Theta.Interop;

namespace Theta
{
    /// <summary>Settings of a new session; every property 0 (or Default) keeps the library's default.</summary>
    public sealed class SessionConfig
    {
        /// <summary>A connection silent this long is closed (default 10 s).</summary>
        public TimeSpan IdleTimeout;
        /// <summary>Keep-alive interval (default 2 s).</summary>
        public TimeSpan KeepAlive;
        /// <summary>Bytes of state datagrams each peer may receive per tick (default 256 KiB).</summary>
        public uint BudgetBytesPerTick;
        /// <summary>Snapshot chunk bound for late joiners (default 16 KiB).</summary>
        public uint MaxChunkBytes;
        /// <summary>How long a client waits for the handshake (default 5 s).</summary>
        public TimeSpan ConnectTimeout;
        /// <summary>How long a host keeps a dropped client's state to resume (default 30 s).</summary>
        public TimeSpan ResumeGrace;
        public Codec SnapshotChunkCodec;
        public Codec DeltaFrameCodec;
        public Codec DatagramCodec;
        /// <summary>zstd levels (0: the kind's default).</summary>
        public int SnapshotChunkLevel, DeltaFrameLevel, DatagramLevel;
        /// <summary>The connections' congestion controller (default BBR).</summary>
        public Congestion Congestion;
        /// <summary>Host: samples before the first dictionary is trained (default 512); uint.MaxValue: on demand only.</summary>
        public uint TrainAfterSamples;
        /// <summary>Host: bytes asked of the dictionary trainer (default 16 KiB).</summary>
        public uint DictionaryBytes;
        /// <summary>Host: connection attempts awaiting admission at once (default 32).</summary>
        public uint MaxPendingAdmissions;
        /// <summary>Host: time from a connection's first packet to its join request (default 3 s).</summary>
        public TimeSpan AdmissionTimeout;
        /// <summary>Host: how long a leased ownership grant outlives its holder's silence (default 5 s).</summary>
        public TimeSpan OwnershipLease;
        /// <summary>
        /// Host: zero (the default) lets the policies decide ownership requests alone; otherwise
        /// each request a policy would grant comes as an OwnershipRequested event, to answer with
        /// <see cref="Session.DecideOwnership"/> within this time (or it is refused).
        /// </summary>
        public TimeSpan OwnershipHook;
        /// <summary>
        /// Host: zero (the default) sends every client every entity; otherwise interest
        /// management over cubic cells of this size in metres (about a client's view radius):
        /// each client gets only what it sees (see <see cref="Session.SetInterest(InterestVolume)"/>).
        /// </summary>
        public float InterestCell;
        /// <summary>
        /// Host: false (the default) lets clients say what they see; true leaves it to the
        /// host's engine alone (<see cref="Session.SetClientInterest"/>).
        /// </summary>
        public bool InterestHostOnly;

        internal unsafe ThetaSessionConfig ToNative()
        {
            return new ThetaSessionConfig
            {
                struct_size = (uint)sizeof(ThetaSessionConfig),
                idle_timeout_ms = Millis(IdleTimeout, nameof(IdleTimeout)),
                keep_alive_ms = Millis(KeepAlive, nameof(KeepAlive)),
                budget_bytes_per_tick = BudgetBytesPerTick,
                max_chunk_bytes = MaxChunkBytes,
                connect_timeout_ms = Millis(ConnectTimeout, nameof(ConnectTimeout)),
                resume_grace_ms = Millis(ResumeGrace, nameof(ResumeGrace)),
                snapshot_chunk_codec = (byte)SnapshotChunkCodec,
                delta_frame_codec = (byte)DeltaFrameCodec,
                datagram_codec = (byte)DatagramCodec,
                congestion = (byte)Congestion,
                snapshot_chunk_level = SnapshotChunkLevel,
                delta_frame_level = DeltaFrameLevel,
                datagram_level = DatagramLevel,
                train_after_samples = TrainAfterSamples,
                dictionary_bytes = DictionaryBytes,
                max_pending_admissions = MaxPendingAdmissions,
                admission_timeout_ms = Millis(AdmissionTimeout, nameof(AdmissionTimeout)),
                ownership_lease_ms = Millis(OwnershipLease, nameof(OwnershipLease)),
                ownership_hook_ms = Millis(OwnershipHook, nameof(OwnershipHook)),
                interest_cell = InterestCell,
                interest_host_only = InterestHostOnly ? (byte)1 : (byte)0,
            };
        }

        private static uint Millis(TimeSpan span, string name)
        {
            if (span < TimeSpan.Zero || span.TotalMilliseconds > uint.MaxValue)
            {
                throw new ArgumentOutOfRangeException(name, span, "a duration from 0 to 49 days");
            }
            return (uint)span.TotalMilliseconds;
        }
    }
}
