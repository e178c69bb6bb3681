// The ThetaNetXr module: an OpenXR extension plugin that asks for the optional extensions
// converting the platform's monotonic clock to XrTime, and reads the display time the
// OpenXR HMD predicted.
#include "ThetaNetXrClock.h"

#include "Engine/Engine.h"
#include "IOpenXRExtensionPlugin.h"
#include "IOpenXRHMD.h"
#include "IXRTrackingSystem.h"
#include "Modules/ModuleManager.h"
#include "OpenXRCore.h"

#if !PLATFORM_WINDOWS
#include <time.h>
#endif

namespace
{
// The conversion functions, declared here with the platform types spelled out so that the
// module needs none of openxr_platform.h's platform macros: LARGE_INTEGER is one int64,
// struct timespec is the C library's.
#if PLATFORM_WINDOWS
typedef XrResult(XRAPI_PTR* FConvertCounterToTime)(XrInstance, const int64*, XrTime*);
const char* const ConversionExtension = "XR_KHR_win32_convert_performance_counter_time";
const char* const ConversionFunction = "xrConvertWin32PerformanceCounterToTimeKHR";
#else
typedef XrResult(XRAPI_PTR* FConvertCounterToTime)(XrInstance, const struct timespec*, XrTime*);
const char* const ConversionExtension = "XR_KHR_convert_timespec_time";
const char* const ConversionFunction = "xrConvertTimespecTimeToTimeKHR";
#endif

XrInstance GInstance = XR_NULL_HANDLE;
FConvertCounterToTime GConvert = nullptr;
}  // namespace

class FThetaNetXrModule : public IModuleInterface, public IOpenXRExtensionPlugin
{
public:
	virtual void StartupModule() override { RegisterOpenXRExtensionModularFeature(); }

	virtual void ShutdownModule() override
	{
		UnregisterOpenXRExtensionModularFeature();
		GInstance = XR_NULL_HANDLE;
		GConvert = nullptr;
	}

	virtual FString GetDisplayName() override { return FString(TEXT("ThetaNetXr")); }

	virtual bool GetOptionalExtensions(TArray<const ANSICHAR*>& OutExtensions) override
	{
		OutExtensions.Add(ConversionExtension);
		return true;
	}

	virtual void PostCreateInstance(XrInstance InInstance) override
	{
		GInstance = InInstance;
		GConvert = nullptr;
		PFN_xrVoidFunction Function = nullptr;
		// Fails (and GetNow says so) when the runtime did not enable the extension.
		if (XR_SUCCEEDED(xrGetInstanceProcAddr(InInstance, ConversionFunction, &Function)) && Function != nullptr)
		{
			GConvert = reinterpret_cast<FConvertCounterToTime>(Function);
		}
	}
};

IMPLEMENT_MODULE(FThetaNetXrModule, ThetaNetXr)

bool FThetaNetXrClock::GetDisplayTime(int64& OutXrTime)
{
	if (GEngine == nullptr || !GEngine->XRSystem.IsValid())
	{
		return false;
	}
	IOpenXRHMD* OpenXR = GEngine->XRSystem->GetIOpenXRHMD();
	if (OpenXR == nullptr)
	{
		return false;
	}
	const XrTime DisplayTime = OpenXR->GetDisplayTime();
	if (DisplayTime <= 0)
	{
		return false;  // no frame predicted yet
	}
	OutXrTime = static_cast<int64>(DisplayTime);
	return true;
}

bool FThetaNetXrClock::GetNow(int64& OutXrTime)
{
	if (GConvert == nullptr || GInstance == XR_NULL_HANDLE)
	{
		return false;
	}
	XrTime Now = 0;
#if PLATFORM_WINDOWS
	// QueryPerformanceCounter, which Cycles64 reads on Windows.
	const int64 Counter = static_cast<int64>(FPlatformTime::Cycles64());
	const XrResult Result = GConvert(GInstance, &Counter, &Now);
#else
	struct timespec Monotonic;
	clock_gettime(CLOCK_MONOTONIC, &Monotonic);
	const XrResult Result = GConvert(GInstance, &Monotonic, &Now);
#endif
	if (XR_FAILED(Result))
	{
		return false;
	}
	OutXrTime = static_cast<int64>(Now);
	return true;
}
