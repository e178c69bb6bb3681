// ThetaReplicatedComponent.h: maps its actor to a Theta entity. On the peer that placed
// or spawned the actor it creates the entity and writes the actor's transform and its
// named blobs; on the other peers the ThetaSubsystem spawns the actor from the class map
// and this component applies what arrives.
#pragma once

#include "Components/ActorComponent.h"
#include "CoreMinimal.h"
#include "ThetaNetTypes.h"

#include "ThetaReplicatedComponent.generated.h"

UCLASS(ClassGroup = (Theta), meta = (BlueprintSpawnableComponent))
class THETANET_API UThetaReplicatedComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UThetaReplicatedComponent();

	/** The key remote peers look the actor's class up by (Theta Net settings'
	 *  ActorClasses, or UThetaSubsystem::RegisterActorClass). None: the entity replicates
	 *  but remote peers spawn nothing for it. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	FName ClassKey;

	/** Write the actor's transform whenever it changes (local actors). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	bool bReplicateTransform = true;

	/** Remote actors: approach each received transform at this rate (1/s) instead of
	 *  jumping to it; 0 jumps. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta", meta = (ClampMin = "0"))
	float RemoteSmoothing = 20.0f;

	/** Sets a named blob (a type listed in the Theta Net settings) of a local actor; it
	 *  reaches the other peers with the next ticks. False for a remote actor, an unknown
	 *  name, or a value over the type's size. */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	bool SetBlob(FName Name, const TArray<uint8>& Bytes);

	/** The newest value of a named blob, local or received; false when none. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	bool GetBlob(FName Name, TArray<uint8>& OutBytes) const;

	/** Whether this actor is another peer's, driven from the session. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	bool IsRemote() const { return bRemote; }

	/** The entity (0 before the session gave one), as an int64 for Blueprints. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	int64 GetEntityId() const;

	/** The peer that owns the entity. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	int32 GetOwnerPeer() const { return OwnerPeer; }

	/** A remote peer changed one of this actor's blobs. */
	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaBlobSignature OnBlobReceived;

	// --- For UThetaSubsystem ---------------------------------------------------------

	uint64 GetEntity() const { return Entity; }
	/** This (local) actor's entity was created: write what it holds. */
	void BindLocal(uint64 InEntity, int32 InOwnerPeer);
	/** This actor stands for a remote entity. */
	void BindRemote(uint64 InEntity, int32 InOwnerPeer);
	/** The session ended: keep running unreplicated. */
	void Unbind();
	void ApplyRemoteTransform(const FTransform& Transform);
	void ApplyRemoteBlob(FName Name, const TArray<uint8>& Bytes);

	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;
	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

private:
	class UThetaSubsystem* GetSubsystem() const;
	void WriteTransform();

	uint64 Entity = 0;
	int32 OwnerPeer = -1;
	bool bRemote = false;
	TMap<FName, TArray<uint8>> Blobs;
	TArray<uint8> LastWrittenTransform;
	bool bHasRemoteTarget = false;
	FTransform RemoteTarget;
};
