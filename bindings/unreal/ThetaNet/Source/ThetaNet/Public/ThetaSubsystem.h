// ThetaSubsystem.h: one Theta session per game instance. Hosts or joins, ticks the session
// once per frame after the actors (so their writes go out in the same frame), and turns the
// session's events into delegates, remote actors and avatars.
#pragma once

#include "CoreMinimal.h"
#include "GameFramework/Actor.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "ThetaNetTypes.h"
#include "Tickable.h"

THIRD_PARTY_INCLUDES_START
#include "theta.h"
THIRD_PARTY_INCLUDES_END

#include "ThetaSubsystem.generated.h"

class UThetaReplicatedComponent;

UCLASS()
class THETANET_API UThetaSubsystem : public UGameInstanceSubsystem, public FTickableGameObject
{
	GENERATED_BODY()

public:
	// --- Blueprint API -------------------------------------------------------------

	/** Hosts a session on BindAddress ("0.0.0.0:7000"; port 0 picks one, see GetLocalPort).
	 *  Clients need GetFingerprintHex() and a token from MintJoinToken(). */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	bool Host(const FString& BindAddress, FString& OutError);

	/** Joins the host at Address ("192.168.1.20:7000"), pinning its certificate fingerprint
	 *  (64 hex digits) with a token the host minted. Returns once the request is on its way:
	 *  OnJoined or OnDisconnected tells how it went. */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	bool Join(const FString& Address, const FString& FingerprintHex, const FString& Token, FString& OutError);

	/** Client: resumes after OnDisconnected with cause TimedOut (the headset came off, the
	 *  network changed): dials the host again, which sends what changed meanwhile (no
	 *  snapshot) while it keeps this client's state. OnJoined follows, or OnDisconnected
	 *  (Refused: the grace period ended, Leave and Join again with a fresh token). */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	bool Reconnect(FString& OutError);

	/** Leaves (a client) or shuts the session down (the host): remote actors and avatars are
	 *  destroyed, local actors keep running unreplicated. */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	void Leave();

	UFUNCTION(BlueprintPure, Category = "Theta")
	EThetaSessionState GetState() const { return State; }

	UFUNCTION(BlueprintPure, Category = "Theta")
	bool IsHost() const { return bIsHost; }

	/** This peer's id: the host's, or the one the host gave this client; -1 before that. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	int32 GetLocalPeer() const { return LocalPeer; }

	/** Host: the port clients join (useful after binding port 0); 0 without a session. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	int32 GetLocalPort() const;

	/** The host certificate's fingerprint as 64 hex digits (a host's own, or the one a
	 *  client pins); empty without a session. */
	UFUNCTION(BlueprintPure, Category = "Theta")
	FString GetFingerprintHex() const;

	/** Host: a join token admitting client Peer (1 to 65535) once. */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	bool MintJoinToken(int32 Peer, FString& OutToken, FString& OutError);

	/** The session's figures panel (connections, bytes, compression), for a debug HUD. */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	FString GetDiagnostics() const;

	/** Client: receives only the actors within Radius (Unreal units) of Location (a world
	 *  location, usually the head's), plus those of the scopes set with SetInterestScopes;
	 *  they stay until Radius + Hysteresis. Actors leaving are destroyed here (an
	 *  OnEntityEvent of kind Left; they live on with their owner). Call it each frame: an
	 *  unchanged wish costs nothing, a changed one goes to the host at most every 50 ms.
	 *  Needs a host with InterestCellMeters set (it ignores the wish otherwise). */
	UFUNCTION(BlueprintCallable, Category = "Theta|Interest")
	bool SetInterest(const FVector& Location, float Radius, float Hysteresis, FString& OutError);

	/** Client: the scopes (a room, a tool, a team: ids from 0) whose actors this client
	 *  receives wherever they are, beside its interest sphere. At most 64. */
	UFUNCTION(BlueprintCallable, Category = "Theta|Interest")
	bool SetInterestScopes(const TArray<int32>& Scopes, FString& OutError);

	/** Adds or replaces a class remote actors with this key are spawned from (on top of
	 *  the project settings' ActorClasses). */
	UFUNCTION(BlueprintCallable, Category = "Theta")
	void RegisterActorClass(FName ClassKey, TSubclassOf<AActor> ActorClass);

	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaJoinedSignature OnJoined;

	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaPeerJoinedSignature OnPeerJoined;

	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaPeerLeftSignature OnPeerLeft;

	/** A client's connection ended or was refused. With cause TimedOut the session stays
	 *  (state Disconnected) for Reconnect or Leave; otherwise it is gone afterwards. */
	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaDisconnectedSignature OnDisconnected;

	/** A write to an entity the writer does not own was refused (host: Peer is the
	 *  offending client; client: its own writes). */
	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaWriteRejectedSignature OnWriteRejected;

	/** Host: a connection's join request was refused. */
	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaJoinRefusedSignature OnJoinRefused;

	/** Every change to the replicated state (client), after the plugin applied it. */
	UPROPERTY(BlueprintAssignable, Category = "Theta")
	FThetaEntityEventSignature OnEntityEvent;

	// --- For the plugin's components and C++ users --------------------------------

	/** The session handle for calls this class does not wrap; {0} without a session. */
	ThetaSession GetSessionHandle() const { return Session; }

	/** Whether entities may be created and written (hosting, or joined). */
	bool IsConnected() const { return State == EThetaSessionState::Connected; }

	/** Unreal units per metre of the current world (WorldSettings' WorldToMeters). */
	double GetUnitsPerMeter() const;

	/** The time poses are pushed and sampled at: OpenXR's predicted display time when an
	 *  OpenXR session runs, else the session clock now (XrTime nanoseconds). */
	int64 GetPoseTime() const;

	/** Pushes this peer's device pose (0 head, 1 left hand, 2 right hand, 3-10 trackers)
	 *  given as a world transform, at GetPoseTime(). */
	bool PushDevicePose(uint8 Device, const FTransform& WorldPose, bool bTracked);

	/** Another peer's device pose for this frame, as a world transform. */
	bool SampleDevicePose(int32 Peer, uint8 Device, FTransform& OutWorldPose, bool& bOutTracked) const;

	/** Called by UThetaReplicatedComponent::BeginPlay / EndPlay. */
	void RegisterReplicated(UThetaReplicatedComponent* Component);
	void UnregisterReplicated(UThetaReplicatedComponent* Component);

	/** Writes a component value of an entity this peer owns; logs and returns false when
	 *  the session refuses it. */
	bool WriteValue(uint64 Entity, uint32 Component, const uint8* Data, int32 Len);

	uint32 GetTransformComponentId() const { return TransformComponent; }
	bool GetBlobComponentId(FName Name, uint32& OutComponent) const;

	// --- USubsystem / FTickableGameObject ------------------------------------------

	virtual void Deinitialize() override;
	virtual void Tick(float DeltaTime) override;
	virtual TStatId GetStatId() const override;
	virtual ETickableTickType GetTickableTickType() const override;
	virtual bool IsTickable() const override { return Session.id != 0; }
	virtual bool IsTickableWhenPaused() const override { return true; }
	virtual UWorld* GetTickableGameObjectWorld() const override { return GetWorld(); }

private:
	/** What arrived of a remote entity before its actor could be spawned. */
	struct FPendingRemote
	{
		bool bHasTransform = false;
		FTransform Transform;
		FName ClassKey;
		TMap<FName, TArray<uint8>> Blobs;
	};

	bool RegisterTypes(ThetaWorld World, FString& OutError);
	bool StartSession(bool bHost, FString& OutError);
	void OnConnected(int32 Peer);
	void BindLocal(UThetaReplicatedComponent* Component);
	void PollEvents();
	void HandleEntityEvent(const ThetaSessionEvent& Event);
	void TrySpawnRemote(uint64 Entity);
	void ApplyRemoteValue(uint64 Entity, uint32 Component, const TArray<uint8>& Data);
	void DestroyRemote(uint64 Entity);
	void UpdateAvatars();
	void SyncXrClock();
	void EndSession();
	UClass* ResolveClass(FName ClassKey) const;

	bool SendInterest(FString& OutError);

	ThetaSession Session{0};
	EThetaSessionState State = EThetaSessionState::None;
	bool bIsHost = false;
	int32 LocalPeer = -1;
	bool bEndAfterEvents = false;

	uint32 TransformComponent = 0;
	uint32 ClassComponent = 0;
	TMap<FName, uint32> BlobComponents;
	TMap<uint32, FName> ComponentNames;

	TMap<FName, TSubclassOf<AActor>> RuntimeClasses;
	TSet<int32> RemotePeers;
	TMap<uint64, TWeakObjectPtr<UThetaReplicatedComponent>> Entities;
	TArray<TWeakObjectPtr<UThetaReplicatedComponent>> Waiting;
	TMap<uint64, FPendingRemote> PendingRemote;
	TMap<TWeakObjectPtr<AActor>, uint64> SpawningRemote;
	TMap<int32, TWeakObjectPtr<AActor>> Avatars;
	/** The client's interest: its sphere (when set) and subscribed scopes. */
	bool bHasInterestSphere = false;
	ThetaInterestVolume InterestSphere{};
	TArray<uint32> InterestScopes;
	double NextClockSync = 0.0;
	bool bClockFromDisplayTime = false;
};
