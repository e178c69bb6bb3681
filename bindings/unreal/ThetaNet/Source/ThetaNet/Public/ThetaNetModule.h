// ThetaNetModule.h: the runtime module. Loads the Theta library, refuses one of another
// ABI, and routes the library's log into the LogThetaNet category.
#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleInterface.h"

THETANET_API DECLARE_LOG_CATEGORY_EXTERN(LogThetaNet, Log, All);

class THETANET_API FThetaNetModule : public IModuleInterface
{
public:
	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

	/** Whether the library is loaded and speaks this plugin's ABI: nothing may call into it
	 *  otherwise (on Windows a call into a DLL that failed to load would crash). */
	static bool IsLibraryReady();

	/** Why the library is not ready, for messages; empty when it is. */
	static FString GetLoadError();

private:
	void* LibraryHandle = nullptr;
};
