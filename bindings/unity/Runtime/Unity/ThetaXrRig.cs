// The Unity layer: thin, and not compiled on the machine that tests this package.
using System;
using System.Collections.Generic;
using UnityEngine;
using UnityEngine.XR;

namespace Theta.Unity
{
    /// <summary>
    /// Pushes this peer's head and hands from UnityEngine.XR input devices each frame and
    /// shows other peers' avatars: each remote avatar's transforms follow the poses the
    /// session samples for the display time.
    ///
    /// Time: poses are pushed at the session clock's now and sampled for
    /// <see cref="DisplayTime"/>. With the OpenXR plugin, hand the frame's predicted display
    /// time (XrFrameState.predictedDisplayTime, from an OpenXR feature's xrWaitFrame hook)
    /// to <see cref="DisplayTime"/> and call Session.SetXrTime with the runtime's XrTime
    /// now once, so both share OpenXR's clock; without them, the session clock is used.
    /// </summary>
    public sealed class ThetaXrRig : MonoBehaviour
    {
        [Serializable]
        public sealed class RemoteAvatar
        {
            public ushort Peer;
            public Transform Head;
            public Transform LeftHand;
            public Transform RightHand;
        }

        public ThetaSession Session;

        /// <summary>The XR origin: device poses are relative to it (tracking space).</summary>
        public Transform Origin;

        public List<RemoteAvatar> Avatars = new List<RemoteAvatar>();

        /// <summary>The display time to sample remote poses for (XrTime ns); null: the session clock's now.</summary>
        public Func<long> DisplayTime;

        private readonly List<InputDevice> devices = new List<InputDevice>();

        private void Update()
        {
            Session session = Session != null ? Session.Session : null;
            if (session == null || session.Peer == null)
            {
                return;
            }
            long now = session.Now;
            Push(session, XRNode.Head, Device.Head, now);
            Push(session, XRNode.LeftHand, Device.LeftHand, now);
            Push(session, XRNode.RightHand, Device.RightHand, now);
            long display = DisplayTime != null ? DisplayTime() : now;
            foreach (RemoteAvatar avatar in Avatars)
            {
                Show(session, avatar.Peer, Device.Head, avatar.Head, display);
                Show(session, avatar.Peer, Device.LeftHand, avatar.LeftHand, display);
                Show(session, avatar.Peer, Device.RightHand, avatar.RightHand, display);
            }
        }

        private void Push(Session session, XRNode node, Device device, long time)
        {
            InputDevices.GetDevicesAtXRNode(node, devices);
            if (devices.Count == 0)
            {
                return;
            }
            InputDevice input = devices[0];
            Vector3 position;
            Quaternion rotation;
            if (!input.TryGetFeatureValue(CommonUsages.devicePosition, out position)
                || !input.TryGetFeatureValue(CommonUsages.deviceRotation, out rotation))
            {
                return;
            }
            bool tracked;
            PoseFlags flags = input.TryGetFeatureValue(CommonUsages.isTracked, out tracked) && tracked
                ? PoseFlags.Tracked
                : PoseFlags.OrientationValid | PoseFlags.PositionValid;
            var pose = new UnityPose(ThetaReplicatedTransform.ToTheta(position), ThetaReplicatedTransform.ToTheta(rotation));
            session.PushPose(device, pose, time, flags);
        }

        private void Show(Session session, ushort peer, Device device, Transform target, long display)
        {
            if (target == null)
            {
                return;
            }
            UnityPose pose;
            PoseFlags flags;
            if (!session.TrySamplePose(peer, device, display, out pose, out flags))
            {
                target.gameObject.SetActive(false);
                return;
            }
            target.gameObject.SetActive((flags & PoseFlags.PositionValid) != 0);
            Vector3 local = ThetaReplicatedTransform.ToUnity(pose.Position);
            Quaternion rotation = ThetaReplicatedTransform.ToUnity(pose.Rotation);
            if (Origin != null)
            {
                target.SetPositionAndRotation(Origin.TransformPoint(local), Origin.rotation * rotation);
            }
            else
            {
                target.SetPositionAndRotation(local, rotation);
            }
        }
    }
}
