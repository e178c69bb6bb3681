// Loading the library: explicitly from the plugin's Binaries on Windows, Linux and Mac
// (Windows delay-loads the DLL, so this load must come before any call), by the APL's
// loadLibrary on Android, not at all when linked statically.
#include "ThetaNetModule.h"

#include "HAL/PlatformProcess.h"
#include "Interfaces/IPluginManager.h"
#include "Misc/Paths.h"
#include "Modules/ModuleManager.h"

THIRD_PARTY_INCLUDES_START
#include "theta.h"
THIRD_PARTY_INCLUDES_END

DEFINE_LOG_CATEGORY(LogThetaNet);

namespace
{
bool GLibraryReady = false;
FString GLoadError;

/** Theta's log callback: runs on whichever thread logs (the session's network thread
 *  included) and must be fast; UE_LOG is thread-safe. */
void ForwardThetaLog(void* /*UserData*/, uint8_t Level, const uint8_t* Message, size_t Len)
{
	// Bounded: a message is a line, not a document.
	const int32 Length = static_cast<int32>(FMath::Min<size_t>(Len, 8 * 1024));
	const FUTF8ToTCHAR Converted(reinterpret_cast<const ANSICHAR*>(Message), Length);
	const FString Text(Converted.Length(), Converted.Get());
	switch (Level)
	{
	case THETA_LOG_LEVEL_ERROR:
		UE_LOG(LogThetaNet, Error, TEXT("%s"), *Text);
		break;
	case THETA_LOG_LEVEL_WARN:
		UE_LOG(LogThetaNet, Warning, TEXT("%s"), *Text);
		break;
	case THETA_LOG_LEVEL_INFO:
		UE_LOG(LogThetaNet, Log, TEXT("%s"), *Text);
		break;
	default:
		UE_LOG(LogThetaNet, Verbose, TEXT("%s"), *Text);
		break;
	}
}

/** The most verbose Theta level the LogThetaNet category would print, so the library does
 *  not format messages that are thrown away. */
uint8_t ThetaLevelForCategory()
{
	const ELogVerbosity::Type Verbosity = LogThetaNet.GetVerbosity();
	if (Verbosity >= ELogVerbosity::Verbose)
	{
		return THETA_LOG_LEVEL_DEBUG;
	}
	if (Verbosity >= ELogVerbosity::Log)
	{
		return THETA_LOG_LEVEL_INFO;
	}
	if (Verbosity >= ELogVerbosity::Warning)
	{
		return THETA_LOG_LEVEL_WARN;
	}
	return THETA_LOG_LEVEL_ERROR;
}

/** Where the build script staged this platform's shared library (ThetaNetLibrary.Build.cs
 *  names the same folders); empty where the module does not load it itself. */
FString SharedLibraryPath()
{
#if THETA_NET_STATIC || PLATFORM_ANDROID
	return FString();
#else
	const TSharedPtr<IPlugin> Plugin = IPluginManager::Get().FindPlugin(TEXT("ThetaNet"));
	if (!Plugin.IsValid())
	{
		return FString();
	}
	const FString Root = FPaths::Combine(Plugin->GetBaseDir(), TEXT("Binaries"), TEXT("ThirdParty"), TEXT("ThetaNetLibrary"));
#if PLATFORM_WINDOWS
	return FPaths::Combine(Root, TEXT("Win64"), TEXT("theta_net.dll"));
#elif PLATFORM_MAC
	return FPaths::Combine(Root, TEXT("Mac"), TEXT("libtheta_net.dylib"));
#elif PLATFORM_UNIX && PLATFORM_CPU_ARM_FAMILY  // LinuxArm64 (Mac and Android are handled above)
	return FPaths::Combine(Root, TEXT("Linux/aarch64-unknown-linux-gnueabi"), TEXT("libtheta_net.so"));
#elif PLATFORM_UNIX
	return FPaths::Combine(Root, TEXT("Linux/x86_64-unknown-linux-gnu"), TEXT("libtheta_net.so"));
#else
	return FString();
#endif
#endif
}
}  // namespace

void FThetaNetModule::StartupModule()
{
	GLibraryReady = false;
	GLoadError.Reset();

	const FString Path = SharedLibraryPath();
	if (!Path.IsEmpty())
	{
		LibraryHandle = FPlatformProcess::GetDllHandle(*Path);
		if (LibraryHandle == nullptr)
		{
			GLoadError = FString::Printf(TEXT("could not load %s (run scripts/build-unreal-plugin.sh)"), *Path);
			UE_LOG(LogThetaNet, Error, TEXT("ThetaNet: %s"), *GLoadError);
			return;
		}
	}

	const uint32 LibraryAbi = theta_abi_version();
	if (LibraryAbi != THETA_ABI_VERSION)
	{
		GLoadError = FString::Printf(TEXT("the Theta library speaks ABI %u, this plugin was built for ABI %u: "
			"rebuild the library and the plugin from one checkout"), LibraryAbi, static_cast<uint32>(THETA_ABI_VERSION));
		UE_LOG(LogThetaNet, Error, TEXT("ThetaNet: %s"), *GLoadError);
		return;
	}

	theta_set_log_callback(&ForwardThetaLog, nullptr);
	theta_set_log_level(ThetaLevelForCategory());
	GLibraryReady = true;
	UE_LOG(LogThetaNet, Log, TEXT("ThetaNet: Theta %s loaded (ABI %u)"), UTF8_TO_TCHAR(theta_version()), LibraryAbi);
}

void FThetaNetModule::ShutdownModule()
{
	if (GLibraryReady)
	{
		// Before the library goes: its threads must not call into a module being unloaded.
		// Sessions are gone by now (the game instance's subsystems deinitialise first).
		theta_set_log_callback(nullptr, nullptr);
	}
	GLibraryReady = false;
	if (LibraryHandle != nullptr)
	{
		FPlatformProcess::FreeDllHandle(LibraryHandle);
		LibraryHandle = nullptr;
	}
}

bool FThetaNetModule::IsLibraryReady()
{
	return GLibraryReady;
}

FString FThetaNetModule::GetLoadError()
{
	return GLoadError;
}

IMPLEMENT_MODULE(FThetaNetModule, ThetaNet)
