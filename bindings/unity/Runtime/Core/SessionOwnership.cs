using System;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// Ownership: an entity (or one component of it) is owned by the host, a client or
    /// nobody, and only its owner writes it. It starts with its creator; a client asks the
    /// host for it, the host decides by its <see cref="OwnershipPolicy"/> (and its engine's
    /// hook, <see cref="SessionConfig.OwnershipHook"/>). Answers come as events:
    /// OwnershipChanged on every peer, OwnershipDenied to the requester, OwnershipRequested
    /// on a host with a hook. Overloads without a component act on the whole entity.
    /// </summary>
    public sealed unsafe partial class Session
    {
        /// <summary>The owner of what nobody holds, in an OwnershipChanged event's <see cref="SessionEvent.Peer"/>.</summary>
        public const ushort Nobody = NativeMethods.THETA_OWNER_NOBODY;

        /// <summary>Most UTF-8 bytes of a refusal's reason (<see cref="DecideOwnership"/>).</summary>
        public const int MaxOwnershipReasonBytes = (int)NativeMethods.THETA_MAX_OWNERSHIP_REASON_BYTES;

        /// <summary>
        /// Client: asks the host for the entity, or renews the lease of one it holds. Writes
        /// go out once an OwnershipChanged event names this client; an OwnershipDenied event
        /// says why not. Throws <see cref="ThetaException"/>: <see cref="Status.WrongRole"/>
        /// on a host, <see cref="Status.NotConnected"/> before joining,
        /// <see cref="Status.DeadEntity"/> for an entity not alive here.
        /// </summary>
        public void RequestOwnership(Entity entity)
        {
            RequestOwnership(entity, 0);
        }

        /// <summary>As <see cref="RequestOwnership(Entity)"/>, for one component of the entity.</summary>
        public void RequestOwnership(Entity entity, ComponentType component)
        {
            RequestOwnership(entity, component.Id);
        }

        /// <summary>
        /// Gives up what this peer holds (a client's last writes go first); nobody owns it
        /// then. <see cref="Status.NotOwner"/> when this peer does not hold it.
        /// </summary>
        public void ReleaseOwnership(Entity entity)
        {
            ReleaseOwnership(entity, 0);
        }

        /// <summary>As <see cref="ReleaseOwnership(Entity)"/>, for one component of the entity.</summary>
        public void ReleaseOwnership(Entity entity, ComponentType component)
        {
            ReleaseOwnership(entity, component.Id);
        }

        /// <summary>
        /// Sets who may take the entity, and its flags, keeping its owner: the host for
        /// anything, a client for what it holds (<see cref="Status.NotOwner"/> otherwise).
        /// </summary>
        public void SetOwnershipPolicy(Entity entity, OwnershipPolicy policy, OwnershipFlags flags = OwnershipFlags.None)
        {
            SetOwnershipPolicy(entity, 0, policy, flags);
        }

        /// <summary>As <see cref="SetOwnershipPolicy(Entity, OwnershipPolicy, OwnershipFlags)"/>, for one component.</summary>
        public void SetOwnershipPolicy(Entity entity, ComponentType component, OwnershipPolicy policy, OwnershipFlags flags = OwnershipFlags.None)
        {
            SetOwnershipPolicy(entity, component.Id, policy, flags);
        }

        /// <summary>
        /// Host: makes <paramref name="owner"/> (the host's or a connected client's peer id;
        /// null for nobody) the owner, whatever the policy. <see cref="Status.WrongRole"/> on
        /// a client, <see cref="Status.InvalidArgument"/> for a peer not connected.
        /// </summary>
        public void SetOwner(Entity entity, ushort? owner)
        {
            SetOwner(entity, 0, owner);
        }

        /// <summary>As <see cref="SetOwner(Entity, ushort?)"/>, for one component of the entity.</summary>
        public void SetOwner(Entity entity, ComponentType component, ushort? owner)
        {
            SetOwner(entity, component.Id, owner);
        }

        /// <summary>
        /// Host: answers an OwnershipRequested event (its <see cref="SessionEvent.Request"/>):
        /// grants it if the policy still allows it, or refuses it, telling the requester
        /// <paramref name="reason"/> (null: a generic one). <see cref="Status.NotFound"/> when
        /// no such request waits (answered, timed out, or its requester left).
        /// </summary>
        public void DecideOwnership(ulong request, bool accept, string reason = null)
        {
            byte[] text = reason == null ? new byte[0] : System.Text.Encoding.UTF8.GetBytes(reason);
            if (text.Length > MaxOwnershipReasonBytes)
            {
                throw new ArgumentException("a reason has at most " + MaxOwnershipReasonBytes + " UTF-8 bytes, not " + text.Length, nameof(reason));
            }
            ThetaSession session = Handle;
            fixed (byte* p = text)
            {
                Library.Check(NativeMethods.theta_session_decide_ownership(session, request, accept ? (byte)1 : (byte)0, p, (UIntPtr)text.Length));
            }
        }

        /// <summary>Who owns the entity as this peer knows: a peer id, or null for nobody.</summary>
        public ushort? OwnerOf(Entity entity)
        {
            return OwnerOf(entity, 0);
        }

        /// <summary>Who owns one component of the entity (its entity's owner unless it has its own record).</summary>
        public ushort? OwnerOf(Entity entity, ComponentType component)
        {
            return OwnerOf(entity, component.Id);
        }

        private void RequestOwnership(Entity entity, uint component)
        {
            Library.Check(NativeMethods.theta_session_request_ownership(Handle, entity.Id, component));
        }

        private void ReleaseOwnership(Entity entity, uint component)
        {
            Library.Check(NativeMethods.theta_session_release_ownership(Handle, entity.Id, component));
        }

        private void SetOwnershipPolicy(Entity entity, uint component, OwnershipPolicy policy, OwnershipFlags flags)
        {
            Library.Check(NativeMethods.theta_session_set_ownership_policy(Handle, entity.Id, component, (byte)policy, (byte)flags));
        }

        private void SetOwner(Entity entity, uint component, ushort? owner)
        {
            if (owner == Nobody)
            {
                throw new ArgumentOutOfRangeException(nameof(owner), "null is nobody; " + Nobody + " is no peer id");
            }
            Library.Check(NativeMethods.theta_session_set_owner(Handle, entity.Id, component, owner ?? Nobody));
        }

        private ushort? OwnerOf(Entity entity, uint component)
        {
            ushort owner;
            Library.Check(NativeMethods.theta_session_owner(Handle, entity.Id, component, &owner));
            return owner == Nobody ? (ushort?)null : owner;
        }
    }
}
