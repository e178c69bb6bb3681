// The Unity layer: thin, and not compiled on the machine that tests this package (it has
// no Unity); everything it calls is the Theta assembly, tested under Mono.
using UnityEngine;

namespace Theta.Unity
{
    /// <summary>
    /// Client: sets this client's interest each frame to a sphere around the XR head (the
    /// main camera unless <see cref="Head"/> is set), so that a host managing interest
    /// (<see cref="ThetaSession.InterestCell"/>) sends it only what is near, plus the
    /// entities of <see cref="Scopes"/>. Entities entering arrive whole; those leaving come
    /// as Left events and leave this client's world (see <see cref="ThetaSession.ReplicaEvent"/>).
    ///
    /// The sphere is in the frame the host's positions are in. ThetaReplicatedTransform
    /// stores OpenXR's frame, so the head's position is converted to it; the host reads
    /// positions with Session.SetInterestSource(type, XrPose.PositionOffset).
    /// Does nothing on a host or before the client joined. Allocates nothing per frame.
    /// </summary>
    public sealed class ThetaInterest : MonoBehaviour
    {
        public ThetaSession Session;

        [Tooltip("The head; empty: the main camera.")]
        public Transform Head;

        [Tooltip("Entities within this many metres of the head are sent to this client.")]
        public float Radius = 10;

        [Tooltip("They stay until this many metres further (hysteresis: no flapping at the edge).")]
        public float Hysteresis = 2;

        [Tooltip("Scopes (rooms, tools, teams) whose entities this client gets wherever they are.")]
        public uint[] Scopes = new uint[0];

        private readonly InterestVolume[] volume = new InterestVolume[1];

        private void Update()
        {
            Theta.Session session = Session != null ? Session.Session : null;
            Transform head = Head != null ? Head : (Camera.main != null ? Camera.main.transform : null);
            if (session == null || head == null || Session.Role != ThetaSession.SessionRole.Join || session.Peer == null)
            {
                return;
            }
            Vector3f center = Frames.ToOpenXr(ThetaReplicatedTransform.ToTheta(head.position));
            volume[0] = InterestVolume.Sphere(center, Radius, Radius + Mathf.Max(0, Hysteresis));
            // The library sends a changed wish at most every 50 ms; an unchanged one not at all.
            session.SetInterest(volume, Scopes ?? new uint[0]);
        }
    }
}
