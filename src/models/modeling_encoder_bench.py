"""encoder-bench classifiers with the seed notebook's head, for transformers.

Saved by encoder-bench beside a checkpoint whose head is the seed's
(`[CLS]` hidden state -> dropout -> `classifier` Linear, no pooler), which
no stock transformers class has. Its config.json names this file in
`auto_map`, so

    AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)

builds the right head; without `trust_remote_code` transformers refuses the
checkpoint (its `model_type` is not one transformers knows) instead of
building BertForSequenceClassification, whose pooler would be newly
initialised and whose predictions would be wrong.
"""
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel, ElectraConfig, ElectraModel, ElectraPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class EncoderBenchBertConfig(BertConfig):
    model_type = "encoder_bench_bert"


class EncoderBenchElectraConfig(ElectraConfig):
    model_type = "encoder_bench_electra"


def _output(logits, labels, num_labels):
    loss = None
    if labels is not None:
        loss = nn.functional.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    return SequenceClassifierOutput(loss=loss, logits=logits)


class EncoderBenchBertClassifier(BertPreTrainedModel):
    config_class = EncoderBenchBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(hidden[:, 0]))
        return _output(logits, labels, self.num_labels)


class EncoderBenchElectraClassifier(ElectraPreTrainedModel):
    config_class = EncoderBenchElectraConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.electra = ElectraModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        hidden = self.electra(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(hidden[:, 0]))
        return _output(logits, labels, self.num_labels)
