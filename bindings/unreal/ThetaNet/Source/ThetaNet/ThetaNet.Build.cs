// ThetaNet: the runtime module. Loads the Theta library, checks its ABI, and gives
// Blueprints and C++ a session subsystem, replicated actor components and XR avatar
// components. No exceptions, no RTTI (the engine's defaults, which theta.hpp is written for).
using UnrealBuildTool;

public class ThetaNet : ModuleRules
{
	public ThetaNet(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		bEnableExceptions = false;
		bUseRTTI = false;

		PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "DeveloperSettings", "ThetaNetLibrary" });
		PrivateDependencyModuleNames.AddRange(new string[] { "Projects", "HeadMountedDisplay" });

		// OpenXR's display time on the platforms its plugin runs on; elsewhere pose times are
		// the session's own clock.
		bool bWithOpenXR = Target.Platform == UnrealTargetPlatform.Win64
			|| Target.Platform == UnrealTargetPlatform.Linux
			|| Target.Platform == UnrealTargetPlatform.Android;
		if (bWithOpenXR)
		{
			PrivateDependencyModuleNames.Add("ThetaNetXr");
		}
		PrivateDefinitions.Add("THETA_NET_WITH_OPENXR=" + (bWithOpenXR ? "1" : "0"));
	}
}
