// ThetaNetXr: the OpenXR clock for Theta's pose times. A module of its own because it must
// load before the OpenXR instance is created (PostConfigInit) to ask for the optional
// time-conversion extensions, which a module holding UObjects cannot do.
using UnrealBuildTool;

public class ThetaNetXr : ModuleRules
{
	public ThetaNetXr(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		PublicDependencyModuleNames.AddRange(new string[] { "Core" });
		PrivateDependencyModuleNames.AddRange(new string[] { "Engine", "HeadMountedDisplay", "OpenXRHMD" });
		// The OpenXR headers (openxr.h), as the engine's OpenXR extension plugins take them.
		AddEngineThirdPartyPrivateStaticDependencies(Target, "OpenXR");
	}
}
