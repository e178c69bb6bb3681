// ThetaNetXrClock.h: OpenXR's clock (XrTime, nanoseconds) for the poses the ThetaNet module
// pushes and samples, so they carry the display time the runtime predicted.
#pragma once

#include "CoreMinimal.h"

/** OpenXR's clock as Theta's pose times use it. Game thread only. */
class THETANETXR_API FThetaNetXrClock
{
public:
	/** The display time OpenXR predicted for the frame being prepared; false without a
	 *  running OpenXR session. */
	static bool GetDisplayTime(int64& OutXrTime);

	/** XrTime now, through XR_KHR_convert_timespec_time (Linux, Android) or
	 *  XR_KHR_win32_convert_performance_counter_time (Windows); false when the runtime
	 *  offers neither. */
	static bool GetNow(int64& OutXrTime);
};
