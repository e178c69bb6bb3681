// Constants of include/theta.h that csbindgen does not emit (their Rust values are
// expressions). tests/csharp_interop.rs checks that every THETA_* constant of the header
// is defined, generated or here, with the header's value.
namespace Theta.Interop
{
    internal static partial class NativeMethods
    {
        /// <summary>Largest dictionary a host trains or a client accepts, in bytes.</summary>
        internal const uint THETA_MAX_DICTIONARY_BYTES = 128 << 10;

        /// <summary>ThetaSessionConfig.train_after_samples: train only on demand.</summary>
        internal const uint THETA_TRAIN_ON_DEMAND_ONLY = uint.MaxValue;
    }
}
