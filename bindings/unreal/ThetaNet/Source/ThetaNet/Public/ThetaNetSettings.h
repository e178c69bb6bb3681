// ThetaNetSettings.h: project settings of the plugin (Project Settings > Plugins > Theta
// Net), the same on every peer of a session: the blob types, the classes remote actors are
// spawned from, the avatar class.
#pragma once

#include "CoreMinimal.h"
#include "Engine/DeveloperSettings.h"
#include "GameFramework/Actor.h"
#include "ThetaNetTypes.h"

#include "ThetaNetSettings.generated.h"

UCLASS(Config = Game, DefaultConfig, meta = (DisplayName = "Theta Net"))
class THETANET_API UThetaNetSettings : public UDeveloperSettings
{
	GENERATED_BODY()

public:
	/** Named blobs actors may replicate. Every peer must list the same ones: the host
	 *  refuses a client whose component types differ. */
	UPROPERTY(Config, EditAnywhere, Category = "Replication")
	TArray<FThetaBlobType> BlobTypes;

	/** The class a remote actor is spawned from, by the class key its owner's
	 *  UThetaReplicatedComponent announces. Keys not listed here are not spawned. */
	UPROPERTY(Config, EditAnywhere, Category = "Replication")
	TMap<FName, TSoftClassPtr<AActor>> ActorClasses;

	/** Spawned for each remote peer whose head pose arrives; it should hold a
	 *  UThetaAvatarComponent. None: no avatars. */
	UPROPERTY(Config, EditAnywhere, Category = "XR")
	TSoftClassPtr<AActor> AvatarClass;

	/** Seconds a minted join token stays valid. */
	UPROPERTY(Config, EditAnywhere, Category = "Session", meta = (ClampMin = "1"))
	int32 JoinTokenTtlSeconds = 600;
};
