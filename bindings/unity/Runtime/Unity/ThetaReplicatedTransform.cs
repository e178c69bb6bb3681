// The Unity layer: thin, and not compiled on the machine that tests this package.
using UnityEngine;

namespace Theta.Unity
{
    /// <summary>
    /// Replicates a Transform's position and rotation as the component "theta.Transform"
    /// (28 bytes, OpenXR's frame, so engines other than Unity read it as they expect).
    /// The peer that spawns the entity owns it and writes it each frame the transform
    /// moved; on other peers the transform follows the replicated value.
    /// </summary>
    public sealed class ThetaReplicatedTransform : MonoBehaviour
    {
        /// <summary>The component type's name; register it with <see cref="Register"/>.</summary>
        public const string TypeName = "theta.Transform";

        public ThetaSession Session;

        /// <summary>The replicated entity: spawned when this peer owns it, else set by the spawner of remote objects.</summary>
        public Entity Entity;

        /// <summary>Whether this peer writes the transform (it spawned the entity).</summary>
        public bool Owned = true;

        private static ComponentType registered;
        private ComponentType type;

        /// <summary>Registers theta.Transform on a world (call from ThetaSession.RegisterTypes).</summary>
        public static ComponentType Register(World world)
        {
            registered = world.RegisterFixed<XrPose>(TypeName);
            return registered;
        }

        private void Start()
        {
            type = registered;
            if (type.Id == 0)
            {
                Debug.LogError("Theta: register theta.Transform (ThetaReplicatedTransform.Register) in ThetaSession.RegisterTypes", this);
                enabled = false;
                return;
            }
            if (Owned && !Entity.IsValid && Session != null && Session.Session != null)
            {
                Entity = Session.Session.Spawn();
            }
        }

        private void LateUpdate()
        {
            Session session = Session != null ? Session.Session : null;
            if (session == null || !Entity.IsValid)
            {
                return;
            }
            if (Owned)
            {
                if (transform.hasChanged)
                {
                    var pose = new UnityPose(ToTheta(transform.position), ToTheta(transform.rotation));
                    session.Set(Entity, type, Frames.ToOpenXr(pose));
                    transform.hasChanged = false;
                }
            }
            else if (session.IsAlive(Entity))
            {
                UnityPose pose = Frames.ToUnity(session.Get<XrPose>(Entity, type));
                transform.SetPositionAndRotation(ToUnity(pose.Position), ToUnity(pose.Rotation));
                transform.hasChanged = false;
            }
        }

        private void OnDestroy()
        {
            Session session = Session != null ? Session.Session : null;
            if (Owned && session != null && Entity.IsValid && session.IsAlive(Entity))
            {
                session.Despawn(Entity);
            }
        }

        internal static Vector3f ToTheta(Vector3 v) => new Vector3f(v.x, v.y, v.z);

        internal static Quaternionf ToTheta(Quaternion q) => new Quaternionf(q.x, q.y, q.z, q.w);

        internal static Vector3 ToUnity(Vector3f v) => new Vector3(v.X, v.Y, v.Z);

        internal static Quaternion ToUnity(Quaternionf q) => new Quaternion(q.X, q.Y, q.Z, q.W);
    }
}
