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

	/** The actors' transforms travel quantised: the position to this many millimetres per
	 *  axis (at least 0.001). Every peer must use the same: the host refuses a client whose
	 *  settings differ (they are part of the registry hash). */
	UPROPERTY(Config, EditAnywhere, Category = "Replication", meta = (ClampMin = "0.001"))
	float TransformPositionPrecisionMm = 1.0f;

	/** The rotation of the actors' transforms to this many degrees (0.001 to 90). The same
	 *  on every peer. */
	UPROPERTY(Config, EditAnywhere, Category = "Replication", meta = (ClampMin = "0.001", ClampMax = "90"))
	float TransformRotationPrecisionDeg = 0.1f;

	/** Send transforms as raw floats (bit-exact, about 3 times the bytes) instead. The same
	 *  on every peer. */
	UPROPERTY(Config, EditAnywhere, Category = "Replication")
	bool bTransformKeepRaw = false;

	/** The class a remote actor is spawned from, by the class key its owner's
	 *  UThetaReplicatedComponent announces. Keys not listed here are not spawned. */
	UPROPERTY(Config, EditAnywhere, Category = "Replication")
	TMap<FName, TSoftClassPtr<AActor>> ActorClasses;

	/** Spawned for each remote peer whose head pose arrives; it should hold a
	 *  UThetaAvatarComponent. None: no avatars. */
	UPROPERTY(Config, EditAnywhere, Category = "XR")
	TSoftClassPtr<AActor> AvatarClass;

	/** Host: interest management over cubic cells of this size in metres (about a
	 *  client's view radius): each client gets only the actors near its interest sphere
	 *  (UThetaSubsystem::SetInterest) and in the scopes it subscribes to. 0: every client
	 *  gets everything. */
	UPROPERTY(Config, EditAnywhere, Category = "Interest", meta = (ClampMin = "0"))
	float InterestCellMeters = 0.0f;

	/** Seconds a minted join token stays valid. */
	UPROPERTY(Config, EditAnywhere, Category = "Session", meta = (ClampMin = "1"))
	int32 JoinTokenTtlSeconds = 600;
};
