// The Unity layer: thin, and not compiled on the machine that tests this package.
using UnityEngine;

namespace Theta.Unity
{
    /// <summary>
    /// Replicates a Transform's position and rotation as the component "theta.Transform"
    /// (28 bytes, OpenXR's frame, so engines other than Unity read it as they expect).
    /// The peer that spawns the entity owns it and writes it each frame the transform
    /// moved; on other peers the transform follows the replicated value. By default the
    /// pose travels as declared fields, quantised to 1 mm and 0.1 degrees (far fewer bytes
    /// than raw floats); the precisions, or raw floats, are chosen at registration
    /// (<see cref="Register(World, float, float, bool)"/>, or <see cref="RegisterWithSettings"/>
    /// from this component's inspector) and must be the same on every peer: they are part
    /// of the registry hash, and a client with other settings is refused at join.
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

        [Header("Precision: the same on every peer (part of the registry hash)")]
        [Tooltip("Largest position error per axis, in millimetres (at least 0.001). Used by RegisterWithSettings.")]
        public float PositionPrecisionMm = DefaultPositionMm;

        [Tooltip("Largest rotation error, in degrees (0.001 to 90). Used by RegisterWithSettings.")]
        public float RotationPrecisionDeg = DefaultRotationDeg;

        [Tooltip("Send raw floats (bit-exact, about 3 times the bytes) instead of quantised fields. Used by RegisterWithSettings.")]
        public bool KeepRaw = false;

        public const float DefaultPositionMm = 1f;
        public const float DefaultRotationDeg = 0.1f;

        private static ComponentType registered;
        private static float registeredMm = DefaultPositionMm, registeredDeg = DefaultRotationDeg;
        private static bool registeredRaw;
        private ComponentType type;
        private bool warnedNotQuantisable;

        /// <summary>
        /// Registers theta.Transform on a world (call from ThetaSession.RegisterTypes) with
        /// the default precisions: 1 mm and 0.1 degrees.
        /// </summary>
        public static ComponentType Register(World world)
        {
            return Register(world, DefaultPositionMm, DefaultRotationDeg, false);
        }

        /// <summary>
        /// Registers theta.Transform with its position declared to
        /// <paramref name="positionPrecisionMm"/> and its rotation to
        /// <paramref name="rotationPrecisionDeg"/>, or as raw floats with
        /// <paramref name="keepRaw"/>. Every peer must register it alike.
        /// </summary>
        public static ComponentType Register(World world, float positionPrecisionMm, float rotationPrecisionDeg, bool keepRaw)
        {
            ComponentType type = world.RegisterFixed<XrPose>(TypeName);
            if (!keepRaw)
            {
                world.DeclareFields(type, XrPose.Fields(positionPrecisionMm, rotationPrecisionDeg));
            }
            registered = type;
            registeredMm = positionPrecisionMm;
            registeredDeg = rotationPrecisionDeg;
            registeredRaw = keepRaw;
            return type;
        }

        /// <summary>
        /// Registers theta.Transform with this component's inspector settings (e.g. those
        /// of a prefab): <c>session.RegisterTypes = w => prefab.RegisterWithSettings(w);</c>
        /// </summary>
        public ComponentType RegisterWithSettings(World world)
        {
            return Register(world, PositionPrecisionMm, RotationPrecisionDeg, KeepRaw);
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
            if (KeepRaw != registeredRaw || (!KeepRaw && (PositionPrecisionMm != registeredMm || RotationPrecisionDeg != registeredDeg)))
            {
                Debug.LogWarning("Theta: this ThetaReplicatedTransform's precision settings differ from those theta.Transform "
                    + "was registered with; the registered ones apply (register with RegisterWithSettings to use these)", this);
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
                    try
                    {
                        session.Set(Entity, type, Frames.ToOpenXr(pose));
                    }
                    catch (ThetaException e) when (e.Status == Status.NotQuantisable)
                    {
                        // Too far from the origin for the declared precision: skipped, said once.
                        if (!warnedNotQuantisable)
                        {
                            Debug.LogWarning("Theta: " + e.Message, this);
                            warnedNotQuantisable = true;
                        }
                    }
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
