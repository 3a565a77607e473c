"""Replays tests/fixtures/hf5-more/trainer-{a,b} by hand (no Trainer) and compares with trainer_run.json.

    /work/v/bin/python tests/reference/check_hf5_trainer.py

Semantics replayed: images in file order; an optimizer step takes gradient_accumulation_steps micro-batches of
per_device_train_batch_size (the last one of an epoch short); each micro-batch contributes its summed cross-entropy
/ the number of labels in the whole step; gradients clipped to global L2 norm max_grad_norm (grad_norm logged before
clipping); torch AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay on every trainable tensor except biases);
the rate of step s (from 0) is lr * s / W while s < W (W = warmup_steps_resolved), then lr * (T - s) / (T - W).
Prints the worst relative differences of step loss and grad_norm, the worst absolute lr difference, and the
relative differences of the final train/validation logits.
"""
import json, os, torch, torch.nn.functional as F
from safetensors.torch import load_file
from transformers import ViTForImageClassification
from peft import PeftModel
torch.set_num_threads(1)
D=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'hf5-more') + '/'
for k in 'ab':
    run=json.load(open(D+f'trainer-{k}/trainer_run.json')); a=run['args']
    px=load_file(D+run['data']['root']+'/pixels.safetensors')
    def norm(x):
        x=x.permute(0,3,1,2).float()/255
        return (x-torch.tensor([0.485,0.456,0.406]).view(1,3,1,1))/torch.tensor([0.229,0.224,0.225]).view(1,3,1,1)
    X=norm(px['train.pixels']); Y=px['train.labels']; XV=norm(px['validation.pixels'])
    m=PeftModel.from_pretrained(ViTForImageClassification.from_pretrained(D+'model'), D+run['start_adapter'], is_trainable=True); m.eval()
    params=[(n,p) for n,p in m.named_parameters() if p.requires_grad]
    decay=[p for n,p in params if not n.endswith('bias')]; nodecay=[p for n,p in params if n.endswith('bias')]
    opt=torch.optim.AdamW([{'params':decay,'weight_decay':a['weight_decay']},{'params':nodecay,'weight_decay':0.0}], lr=a['learning_rate'], betas=(0.9,0.999), eps=1e-8)
    B=a['per_device_train_batch_size']; G=a['gradient_accumulation_steps']; N=len(Y)
    micro=[(i,min(i+B,N)) for i in range(0,N,B)]
    groups=[micro[i:i+G] for i in range(0,len(micro),G)]
    total=len(groups)*a['num_train_epochs']; W=run['warmup_steps_resolved']
    def lr_at(s): return a['learning_rate']*(s/W if s<W else max(0.0,(total-s)/(total-W)))
    step=0; worst={'loss':0,'gn':0,'lr':0}
    for ep in range(a['num_train_epochs']):
        for g in groups:
            n_items=sum(e-s for s,e in g); tot=0.0
            for s,e in g:
                l=F.cross_entropy(m(pixel_values=X[s:e]).logits, Y[s:e], reduction='sum')/n_items
                l.backward(); tot+=l.item()
            gn=torch.nn.utils.clip_grad_norm_([p for _,p in params], a['max_grad_norm']).item()
            for pg in opt.param_groups: pg['lr']=lr_at(step)
            rec=run['steps'][step]
            worst['loss']=max(worst['loss'],abs(tot-rec['loss'])/abs(rec['loss'])); worst['gn']=max(worst['gn'],abs(gn-rec['grad_norm'])/rec['grad_norm']); worst['lr']=max(worst['lr'],abs(lr_at(step)-rec['lr_used']))
            opt.step(); opt.zero_grad(); step+=1
    with torch.no_grad(): v=m(pixel_values=XV).logits; t=m(pixel_values=X).logits
    rv=torch.tensor(run['validation_logits']); rt=torch.tensor(run['train_logits'])
    print(k, worst, 'val_rel', float((v-rv).abs().max()/rv.abs().max()), 'train_rel', float((t-rt).abs().max()/rt.abs().max()))
