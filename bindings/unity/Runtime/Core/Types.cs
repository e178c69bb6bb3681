using System;

namespace Theta
{
    /// <summary>
    /// An entity's network id: its creator peer (high 16 bits) and that peer's counter.
    /// Never reused in a session; 0 is never valid.
    /// </summary>
    public readonly struct Entity : IEquatable<Entity>
    {
        public readonly ulong Id;

        public Entity(ulong id)
        {
            Id = id;
        }

        /// <summary>The peer that created (owns) the entity.</summary>
        public ushort Creator => (ushort)(Id >> 48);

        public bool IsValid => Id != 0;

        public bool Equals(Entity other) => Id == other.Id;

        public override bool Equals(object obj) => obj is Entity other && Equals(other);

        public override int GetHashCode() => Id.GetHashCode();

        public override string ToString() => Creator + ":" + (Id & 0xFFFF_FFFF_FFFFUL);

        public static bool operator ==(Entity a, Entity b) => a.Id == b.Id;

        public static bool operator !=(Entity a, Entity b) => a.Id != b.Id;
    }

    /// <summary>
    /// A registered component type: its id (FNV-1a-32 of the name) and, when it was
    /// registered through this API, its layout, so values of the wrong size are refused
    /// before they reach the library.
    /// </summary>
    public readonly struct ComponentType : IEquatable<ComponentType>
    {
        public readonly uint Id;

        /// <summary>Bytes of a value (fixed), or the most (variable); 0 when unknown.</summary>
        public readonly int Size;

        /// <summary>Whether values may have any size up to <see cref="Size"/>.</summary>
        public readonly bool IsVariable;

        public ComponentType(uint id, int size, bool variable)
        {
            Id = id;
            Size = size;
            IsVariable = variable;
        }

        /// <summary>A component id with an unknown layout (e.g. from an event).</summary>
        public static ComponentType FromId(uint id) => new ComponentType(id, 0, false);

        internal bool KnowsLayout => IsVariable || Size > 0;

        /// <summary>Throws unless <paramref name="length"/> bytes fit the layout.</summary>
        internal void CheckValue(int length, string parameter)
        {
            if (Id == 0)
            {
                throw new ArgumentException("component type 0 is not registered", nameof(ComponentType));
            }
            if (!KnowsLayout)
            {
                return;
            }
            if (IsVariable ? length > Size : length != Size)
            {
                throw new ArgumentException(
                    "a value of component " + Id + " has " + (IsVariable ? "at most " : "exactly ")
                    + Size + " bytes, not " + length, parameter);
            }
        }

        public bool Equals(ComponentType other) => Id == other.Id;

        public override bool Equals(object obj) => obj is ComponentType other && Equals(other);

        public override int GetHashCode() => (int)Id;

        public override string ToString() => "component " + Id;
    }

    /// <summary>What a write did.</summary>
    public enum Change : byte
    {
        /// <summary>Identical bytes: not a change.</summary>
        Unchanged = 0,
        /// <summary>The entity gained the component.</summary>
        Inserted = 1,
        /// <summary>The value's bytes changed.</summary>
        Updated = 2,
    }

    /// <summary>What a batch write did.</summary>
    public struct BatchResult
    {
        public ulong Inserted;
        public ulong Updated;
        public ulong Unchanged;
    }

    /// <summary>Kinds of session events (ThetaSessionEventKind).</summary>
    public enum SessionEventKind : byte
    {
        Spawn = 1,
        Insert = 2,
        Update = 3,
        Remove = 4,
        Despawn = 5,
        PeerJoined = 16,
        PeerLeft = 17,
        Joined = 18,
        Disconnected = 19,
        WriteRejected = 20,
        JoinRefused = 21,
        Message = 32,
        MessageRefused = 33,
        MessageRequested = 34,
        /// <summary>Who owns an entity (or one component, <see cref="SessionEvent.Component"/> not 0) changed: <see cref="SessionEvent.Peer"/> is the new owner, <see cref="Session.Nobody"/> for nobody.</summary>
        OwnershipChanged = 22,
        /// <summary>Client: the host refused this client's ownership request, release or policy; see <see cref="SessionEvent.Refusal"/> and <see cref="SessionEvent.Text"/>.</summary>
        OwnershipDenied = 23,
        /// <summary>Host with <see cref="SessionConfig.OwnershipHook"/>: <see cref="SessionEvent.Peer"/> asks for an entity; answer with <see cref="Session.DecideOwnership"/> and <see cref="SessionEvent.Request"/>.</summary>
        OwnershipRequested = 24,
        /// <summary>Client: an entity left this client's interest; it still exists, and comes back as a Spawn when it enters again.</summary>
        Left = 25,
    }

    /// <summary>Who may take an entity (or one component of it) from whom (ThetaOwnershipPolicy).</summary>
    public enum OwnershipPolicy : byte
    {
        /// <summary>Granted when nobody owns it; leased (the default of every entity).</summary>
        WhenFree = 0,
        /// <summary>Always granted: the requester takes it from its holder; leased.</summary>
        Takeover = 1,
        /// <summary>Granted when nobody owns it; held until released (no lease).</summary>
        OwnerReleases = 2,
        /// <summary>Requests refused: only the host assigns owners.</summary>
        HostOnly = 3,
    }

    /// <summary>Flags of an ownership record.</summary>
    [Flags]
    public enum OwnershipFlags : byte
    {
        None = 0,
        /// <summary>When the owner leaves for good, the entity is despawned rather than released.</summary>
        DespawnWithOwner = 1,
    }

    /// <summary>Why the host refused an ownership request (ThetaOwnershipRefusal).</summary>
    public enum OwnershipRefusal : byte
    {
        UnknownEntity = 0,
        Held = 1,
        HostOnly = 2,
        /// <summary>The host's engine refused it (see the event's text), or did not answer in time.</summary>
        Refused = 3,
        NotOwner = 4,
        Throttled = 5,
    }

    /// <summary>Why a client's connection ended (ThetaDisconnectCause).</summary>
    public enum DisconnectCause : byte
    {
        None = 0,
        Refused = 1,
        Unreachable = 2,
        Certificate = 3,
        TimedOut = 4,
        HostClosed = 5,
        Protocol = 6,
        Local = 7,
    }

    /// <summary>The codec of a message kind (ThetaCodec).</summary>
    public enum Codec : byte
    {
        Default = 0,
        None = 1,
        Zstd = 2,
        ZstdDict = 3,
    }

    /// <summary>The congestion controller of a session's connections (ThetaCongestion).</summary>
    public enum Congestion : byte
    {
        Default = 0,
        Bbr = 1,
        Cubic = 2,
    }

    /// <summary>Severity of a log message (ThetaLogLevel); Off silences logging.</summary>
    public enum LogLevel : byte
    {
        Off = 0,
        Error = 1,
        Warn = 2,
        Info = 3,
        Debug = 4,
    }

    /// <summary>A tracked device of a peer.</summary>
    public enum Device : byte
    {
        Head = 0,
        LeftHand = 1,
        RightHand = 2,
        Tracker0 = 3,
        Tracker1 = 4,
        Tracker2 = 5,
        Tracker3 = 6,
        Tracker4 = 7,
        Tracker5 = 8,
        Tracker6 = 9,
        Tracker7 = 10,
    }

    /// <summary>XrSpaceLocationFlags of a pose.</summary>
    [Flags]
    public enum PoseFlags : ulong
    {
        None = 0,
        OrientationValid = 0x1,
        PositionValid = 0x2,
        OrientationTracked = 0x4,
        PositionTracked = 0x8,
        /// <summary>Valid and tracked: what a tracked device reports.</summary>
        Tracked = 0xF,
    }
}
