// ThetaXrComponents.h: XR avatars. UThetaXrRigComponent (on the local VR pawn) pushes the
// head and motion-controller poses each frame at OpenXR's display time;
// UThetaAvatarComponent (on the actor the subsystem spawns per remote peer) places its
// tagged scene components where that peer's devices are for this frame.
#pragma once

#include "Components/ActorComponent.h"
#include "CoreMinimal.h"

#include "ThetaXrComponents.generated.h"

class USceneComponent;

/** The devices Theta streams (ThetaPosef device indices). */
UENUM(BlueprintType)
enum class EThetaXrDevice : uint8
{
	Head = 0,
	LeftHand = 1,
	RightHand = 2,
};

UCLASS(ClassGroup = (Theta), meta = (BlueprintSpawnableComponent))
class THETANET_API UThetaXrRigComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UThetaXrRigComponent();

	/** The head: by default the owner's first camera (locked to the HMD). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	TObjectPtr<USceneComponent> Head;

	/** The hands: by default the owner's motion controllers whose MotionSource is Left
	 *  and Right. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	TObjectPtr<USceneComponent> LeftHand;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	TObjectPtr<USceneComponent> RightHand;

	virtual void BeginPlay() override;
	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;
};

UCLASS(ClassGroup = (Theta), meta = (BlueprintSpawnableComponent))
class THETANET_API UThetaAvatarComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UThetaAvatarComponent();

	/** The remote peer this avatar shows (set by the subsystem when it spawns the avatar). */
	UPROPERTY(BlueprintReadWrite, Category = "Theta")
	int32 Peer = -1;

	/** Hide a device's component while its pose is unknown. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	bool bHideUntracked = false;

	/** The peer's device pose for this frame as a world transform; false until one arrived. */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	bool GetDevicePose(EThetaXrDevice Device, FTransform& OutWorldPose, bool& bOutTracked) const;

	virtual void BeginPlay() override;
	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

private:
	/** The owner's scene components tagged ThetaHead, ThetaLeftHand, ThetaRightHand. */
	UPROPERTY()
	TArray<TObjectPtr<USceneComponent>> Devices;
};
