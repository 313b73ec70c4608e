// The Azure host of a reactive-machine app: a Function App (Flex Consumption, Python 3.11)
// triggered by two Event Hubs (the partition hub, one partition per app partition, and the
// ingress hub), a storage account for snapshots, statuses, dead letters and claim checks,
// and a system-assigned managed identity with the least roles it needs. No keys: shared
// key access and Event Hubs local (SAS) auth are disabled.
//
//   az deployment group create -g GROUP -f infra/azure/main.bicep -p partitions=8 apiKey=...
//
// See docs/azure.md.

targetScope = 'resourceGroup'

@description('The app\'s partition count: the partition hub\'s partition count. Fixed for the life of the app\'s state.')
@minValue(1)
@maxValue(32)
param partitions int = 4

@description('Partitions of the ingress hub (requests anyone posts).')
@minValue(1)
@maxValue(32)
param ingressPartitions int = 4

@description('A name for the app; derived names are made from it.')
@minLength(3)
param name string = 'reactive${uniqueString(resourceGroup().id)}'

param location string = resourceGroup().location

@description('Days Event Hubs keeps events: a catch-up read or a redelivery needs them.')
@minValue(1)
@maxValue(7)
param retentionDays int = 7

@description('Days a claim-check blob (a message too large for an event) is kept.')
param claimCheckDays int = 7

@description('Instances the Flex Consumption plan may scale to.')
param maximumInstanceCount int = 40

@allowed([2048, 4096])
param instanceMemoryMB int = 2048

@description('The HTTP API\'s key (x-api-key).')
@secure()
param apiKey string

var container = 'reactive'
var storageName = take('st${uniqueString(resourceGroup().id, name)}', 24)
var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
}

// -- storage: the Functions host's own state, the app's state, the deployment package -------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: container
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'deployment'
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-claim-checks'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${container}/claims/'] }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: claimCheckDays } } }
          }
        }
      ]
    }
  }
}

// -- Event Hubs -------------------------------------------------------------------------------

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: '${name}-ehns'
  location: location
  sku: { name: 'Standard', tier: 'Standard', capacity: 1 }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource partitionHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: 'partitions'
  properties: {
    partitionCount: partitions
    messageRetentionInDays: retentionDays
  }
}

// catch-up reads (a batch that starts after the last commit) use a consumer group of
// their own: the trigger holds each partition of $Default with an owner level
resource catchupGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: partitionHub
  name: 'catchup'
}

resource ingressHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: 'ingress'
  properties: {
    partitionCount: ingressPartitions
    messageRetentionInDays: retentionDays
  }
}

// the namespace's host name, from its endpoint (https://NAME.SUFFIX:443/)
var eventHubsHost = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]

// -- the Function App ---------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${name}-plan'
  location: location
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // identity-based connections: the host's and the app's storage, the triggers' hubs
        { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'EventHubConnection__fullyQualifiedNamespace', value: eventHubsHost }
        { name: 'EventHubConnection__credential', value: 'managedidentity' }
        { name: 'REACTIVE_PARTITIONS', value: string(partitions) }
        { name: 'REACTIVE_PARTITION_HUB', value: partitionHub.name }
        { name: 'REACTIVE_INGRESS_HUB', value: ingressHub.name }
        { name: 'REACTIVE_CONTAINER', value: container }
        { name: 'REACTIVE_CATCHUP_GROUP', value: catchupGroup.name }
        { name: 'REACTIVE_WAKE_SCHEDULE', value: '*/10 * * * * *' }
        { name: 'REACTIVE_API_KEY', value: apiKey }
        // one worker process per instance keeps each partition warm in one place; enough
        // threads to run every partition an instance owns at once
        { name: 'FUNCTIONS_WORKER_PROCESS_COUNT', value: '1' }
        { name: 'PYTHON_THREADPOOL_THREAD_COUNT', value: string(max(partitions + ingressPartitions + 2, 8)) }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer.name}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

// -- least-privilege roles for the app's identity ------------------------------------------------

// Blob data owner on the account: the Functions host keeps its leases and Event Hubs
// checkpoints in it (identity-based AzureWebJobsStorage needs this role), the app its
// snapshots, statuses, dead letters and claim checks.
resource blobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, app.id, roles.blobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// receive from both hubs (the triggers and catch-up reads)
resource receivePartitions 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: partitionHub
  name: guid(partitionHub.id, app.id, roles.eventHubsDataReceiver)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource receiveIngress 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: ingressHub
  name: guid(ingressHub.id, app.id, roles.eventHubsDataReceiver)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// send only to the partition hub (messages between partitions, wake-ups, client requests)
resource sendPartitions 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: partitionHub
  name: guid(partitionHub.id, app.id, roles.eventHubsDataSender)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output functionAppName string = app.name
output eventHubsNamespace string = eventHubsHost
@description('Grant clients that post requests "Azure Event Hubs Data Sender" on this hub.')
output ingressHubId string = ingressHub.id
output storageAccountName string = storage.name
